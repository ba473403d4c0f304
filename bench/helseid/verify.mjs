// Token verification at a resource server, in node, for comparison with helsenett's guard
// (`helsenett-bench helseid-verify`): the same (access token, DPoP proof) pairs, checked with
// panva's `jose` (the JOSE library oidc-provider is built on) the way an API checks a
// DPoP-bound HelseID token.
//
//   node verify.mjs --pairs FILE [--concurrency 64] [--workers N] [--label "node jose"]
//                   [--json FILE]
//
// FILE is what `helsenett-bench helseid-verify --write-pairs FILE` writes: HelseID's JWKS, the
// issuer, audience, scope and request (htm, htu), the access tokens, and the warm-up and timed
// pairs as [token index, DPoP proof]. For every pair, as helsenett's guard does:
// - the access token: jwtVerify against the JWKS (ES256/PS256), typ at+jwt, iss, aud, exp and
//   nbf; the scope; cnf.jkt present;
// - the proof: jwtVerify with its embedded public key (EmbeddedJWK), typ dpop+jwt, jti, htm,
//   htu (as a URL, without query and fragment), iat at most 120 s old and 10 s ahead, ath =
//   base64url(SHA-256(access token)), and the key's thumbprint (calculateJwkThumbprint) equal to
//   the token's cnf.jkt;
// - the proof's jti not seen before, and the token's jti not revoked.
//
// What differs: the replay set and the revocation list are a Set in each worker's memory;
// helsenett writes every proof's jti to its database (so that every node refuses a replay) and
// looks each token up in the database's revocation list.
//
// JavaScript runs on one thread, so the pairs are split over worker threads, one per core
// (os.availableParallelism(), or --workers N), each with its share of --concurrency checks in
// flight; each pair goes to one worker. WebCrypto's signature checks run on libuv's thread pool.
// Each worker reads the file and warms up on its share of the warm-up pairs; the timer runs from
// the moment all are ready until the last finishes. The result line is printed on stdout and,
// with --json, appended to FILE as one JSON line.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { EmbeddedJWK, calculateJwkThumbprint, createLocalJWKSet, jwtVerify } from 'jose';

// HelseID signs tokens with ES256 or PS256; clients' proofs may use any asymmetric algorithm.
const TOKEN_ALGORITHMS = ['ES256', 'PS256'];
const PROOF_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'];
// As helsenett: a proof is accepted up to 120 s after its iat and 10 s before it. jose refuses
// age - tolerance > maxTokenAge, and iat more than the tolerance ahead.
const CLOCK_SKEW_SECONDS = 10;
const MAX_PROOF_AGE_SECONDS = 120;
const ERROR_SAMPLES = 5;

class Refused extends Error {}

function checker(pairs) {
  const jwks = createLocalJWKSet(pairs.jwks);
  const expectedHtu = resource(pairs.htu);
  const seen = new Set();
  const revoked = new Set();
  return async function verify(token, proof) {
    const { payload: at } = await jwtVerify(token, jwks, {
      issuer: pairs.issuer,
      audience: pairs.audience,
      typ: 'at+jwt',
      algorithms: TOKEN_ALGORITHMS,
      requiredClaims: ['exp', 'jti', 'client_id', 'scope'],
    });
    if (typeof at.scope !== 'string' || !at.scope.split(' ').includes(pairs.scope)) {
      throw new Refused(`insufficient_scope: this API needs scope ${pairs.scope}`);
    }
    const jkt = at.cnf?.jkt;
    if (typeof jkt !== 'string') throw new Refused('the access token is not DPoP-bound');

    const { payload: p, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: PROOF_ALGORITHMS,
      maxTokenAge: MAX_PROOF_AGE_SECONDS - CLOCK_SKEW_SECONDS,
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['iat', 'jti', 'htm', 'htu'],
    });
    if (typeof p.jti !== 'string' || p.jti.length === 0 || p.jti.length > 256) {
      throw new Refused('the DPoP proof lacks the jti claim');
    }
    if (p.htm !== pairs.htm) throw new Refused(`the DPoP proof's htm is ${p.htm}`);
    if (typeof p.htu !== 'string' || resource(p.htu) !== expectedHtu) {
      throw new Refused(`the DPoP proof's htu is ${p.htu}`);
    }
    if (p.ath !== createHash('sha256').update(token).digest('base64url')) {
      throw new Refused("the DPoP proof's ath does not match the access token");
    }
    if ((await calculateJwkThumbprint(protectedHeader.jwk, 'sha256')) !== jkt) {
      throw new Refused('the DPoP proof is signed by another key than the token is bound to');
    }
    const key = `${jkt}:${p.jti}`;
    if (seen.has(key)) throw new Refused("the DPoP proof's jti has been used before");
    seen.add(key);
    if (revoked.has(at.jti)) throw new Refused('the access token has been revoked');
    return at.client_id;
  };
}

// A URL without its query and fragment, as htu is compared.
function resource(url) {
  try {
    const u = new URL(url);
    u.search = '';
    u.hash = '';
    return u.href;
  } catch {
    return null;
  }
}

// Checks `list` (pairs) with `concurrency` loops; latencies in ms, errors and a few samples.
async function run(verify, tokens, list, concurrency) {
  const latencies = new Float64Array(list.length);
  let next = 0;
  let ok = 0;
  let errors = 0;
  const samples = {};
  const loop = async () => {
    while (next < list.length) {
      const [t, proof] = list[next++];
      const started = performance.now();
      let failure = null;
      try {
        const clientId = await verify(tokens[t].access_token, proof);
        if (clientId !== tokens[t].client_id) failure = `the token named client ${clientId}`;
      } catch (e) {
        failure = `${e.code ?? e.constructor.name}: ${e.message}`;
      }
      const elapsed = performance.now() - started;
      if (failure === null) {
        latencies[ok++] = elapsed;
      } else {
        errors++;
        if (failure in samples) samples[failure]++;
        else if (Object.keys(samples).length < ERROR_SAMPLES) samples[failure] = 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, loop));
  return { ok, errors, samples, latencies: latencies.subarray(0, ok) };
}

async function worker() {
  const { file, index, workers, concurrency } = workerData;
  const pairs = JSON.parse(fs.readFileSync(file, 'utf8'));
  const mine = (list) => list.filter((_, k) => k % workers === index);
  const verify = checker(pairs);
  const warm = await run(verify, pairs.tokens, mine(pairs.warmup), concurrency);
  const timed = mine(pairs.timed);
  parentPort.once('message', async () => {
    const result = await run(verify, pairs.tokens, timed, concurrency);
    parentPort.postMessage({ ...result, warm_errors: warm.errors, warm_samples: warm.samples });
  });
  parentPort.postMessage({ ready: true, warm: warm.ok });
}

function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(Math.max(Math.ceil(q * sorted.length), 1), sorted.length);
  return sorted[rank - 1];
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      pairs: { type: 'string' },
      concurrency: { type: 'string', default: '64' },
      workers: { type: 'string', default: String(os.availableParallelism()) },
      label: { type: 'string', default: 'node jose' },
      json: { type: 'string' },
    },
  });
  if (!args.pairs) {
    console.error('verify.mjs: --pairs FILE is required');
    process.exit(2);
  }
  const workers = Number(args.workers);
  const concurrency = Number(args.concurrency);
  if (!(workers >= 1) || !(concurrency >= 1)) {
    console.error('verify.mjs: --workers and --concurrency must be at least 1');
    process.exit(2);
  }
  const file = args.pairs;
  const label = args.label;
  const perWorker = Math.ceil(concurrency / workers);
  const threads = Array.from(
    { length: workers },
    (_, index) =>
      new Worker(new URL(import.meta.url), {
        workerData: { file, index, workers, concurrency: perWorker },
      }),
  );
  const message = (w) =>
    new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  const ready = await Promise.all(threads.map(message));
  const warm = ready.reduce((n, r) => n + r.warm, 0);
  console.error(`verify.mjs: ${label}: ${workers} worker threads, ${warm} warm-up verifications`);

  const done = threads.map(message);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (const w of threads) w.postMessage('start');
  const results = await Promise.all(done);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(threads.map((w) => w.terminate()));

  let ok = 0;
  let errors = 0;
  let warmErrors = 0;
  const samples = {};
  for (const r of results) {
    ok += r.ok;
    errors += r.errors;
    warmErrors += r.warm_errors;
    for (const [what, n] of [...Object.entries(r.warm_samples), ...Object.entries(r.samples)]) {
      samples[what] = (samples[what] ?? 0) + n;
    }
  }
  const latencies = new Float64Array(ok);
  let at = 0;
  for (const r of results) {
    latencies.set(r.latencies, at);
    at += r.latencies.length;
  }
  latencies.sort();
  for (const [what, n] of Object.entries(samples)) {
    console.error(`verify.mjs: ${label}: error (${n}x): ${what}`);
  }
  const requests = ok + errors;
  const perSecond = ok / seconds;
  const [p50, p90, p99] = [0.5, 0.9, 0.99].map((q) => quantile(latencies, q));
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const cpuMs = ok > 0 ? (1000 * cpuSeconds) / ok : null;
  const cpuNote = cpuMs === null ? '' : `  CPU ${cpuMs.toFixed(3)} ms/verification`;
  console.log(
    `${label}: ${perSecond.toFixed(0)} verifications/s  p50 ${p50.toFixed(2)} ms  ` +
      `p99 ${p99.toFixed(2)} ms${cpuNote}  (n=${requests}, concurrency=${concurrency}, ` +
      `workers=${workers}, errors=${errors})`,
  );
  const result = {
    label,
    kind: 'verify',
    node: process.version,
    requests,
    verifications: ok,
    errors,
    warmup_errors: warmErrors,
    concurrency,
    workers,
    seconds,
    verifications_per_second: perSecond,
    p50_ms: p50,
    p90_ms: p90,
    p99_ms: p99,
    max_ms: ok > 0 ? latencies[ok - 1] : 0,
    cpu_seconds: cpuSeconds,
    cpu_ms_per_verification: cpuMs,
    replay_log: 'memory',
    error_samples: Object.keys(samples),
  };
  if (args.json) fs.appendFileSync(args.json, `${JSON.stringify(result)}\n`);
  else console.log(JSON.stringify(result));
  process.exitCode = errors + warmErrors > 0 ? 1 : 0;
}

if (isMainThread) {
  await main();
} else {
  await worker();
}
