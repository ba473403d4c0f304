// The reference authorization server for bench/helseid: panva's oidc-provider, configured the
// way helsenett's HelseID issues machine tokens, so that both can be loaded with the same
// requests on the same machine.
//
//   node oidc-provider.mjs --clients FILE [--port 3001] [--host 127.0.0.1] [--workers N]
//
// What is the same as helsenett's HelseID:
// - the clients of the clients file (`helsenett synth` writes {data_dir}/helseid-clients.jsonl),
//   each with its public key (the `d` of its JWK dropped), its scopes, private_key_jwt with
//   ES256 as its only client authentication, the client_credentials grant only, and DPoP-bound
//   access tokens required;
// - DPoP is required to carry a server nonce; nonces are stateless (derived from a shared
//   secret and the time), so every worker accepts the nonces of every other worker;
// - access tokens are JWTs signed with ES256, audience "nhn:msh" for scope "nhn:msh/api",
//   lifetime 300 s;
// - client assertion and DPoP proof jti are checked for replay.
//
// What differs: the replay store is in the memory of each worker process (helsenett keeps it
// in its database), so a jti replayed to a different worker would not be caught. The issuer is
// http://HOST:PORT (oidc-provider mounted at the root) rather than .../helseid.
//
// Node runs JavaScript on one thread, so the server runs in cluster mode with one worker per
// core (os.availableParallelism(), or --workers N); the workers share the listening socket.
// The primary prints "ready <issuer> workers=<n>" on stdout when every worker listens.

import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: process.env.BENCH_CLIENTS },
    port: { type: 'string', default: process.env.BENCH_PORT ?? '3001' },
    host: { type: 'string', default: process.env.BENCH_HOST ?? '127.0.0.1' },
    workers: { type: 'string', default: process.env.BENCH_WORKERS ?? String(os.availableParallelism()) },
  },
});

if (!args.clients) {
  console.error('oidc-provider.mjs: --clients FILE is required');
  process.exit(2);
}

const port = Number(args.port);
const workers = Number(args.workers);
const issuer = `http://${args.host}:${port}`;

// The audience and scope of the API the benchmark asks for, as in HelseID's catalogue.
const RESOURCE = 'nhn:msh';
const RESOURCE_SCOPE = 'nhn:msh/api';
const ACCESS_TOKEN_SECONDS = 300;

async function worker() {
  const { default: Provider, errors } = await import('oidc-provider');

  // Clients: the same file helsenett loads, public keys only.
  const clients = [];
  const scopes = new Set([RESOURCE_SCOPE]);
  for (const line of fs.readFileSync(args.clients, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    const { d: _private, ...publicJwk } = c.private_jwk;
    for (const s of c.scope.split(' ').filter(Boolean)) scopes.add(s);
    clients.push({
      client_id: c.client_id,
      client_name: c.name,
      scope: c.scope,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'ES256',
      dpop_bound_access_tokens: true,
      jwks: { keys: [publicJwk] },
    });
  }

  const provider = new Provider(issuer, {
    adapter: ExpiringMemoryAdapter,
    clients,
    jwks: { keys: [JSON.parse(process.env.BENCH_SIGNING_JWK)] },
    cookies: { keys: [process.env.BENCH_COOKIE_KEY] },
    scopes: [...scopes],
    ttl: { ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_SECONDS },
    responseTypes: [],
    clientAuthMethods: ['private_key_jwt'],
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES256'],
      dPoPSigningAlgValues: ['ES256'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      userinfo: { enabled: false },
      dPoP: {
        enabled: true,
        nonceSecret: Buffer.from(process.env.BENCH_NONCE_SECRET, 'base64'),
        requireNonce: () => true,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: RESOURCE_SCOPE,
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: ACCESS_TOKEN_SECONDS,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });

  // Errors are part of the benchmark's answer, not something to log per request.
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));

  const server = provider.listen(port, args.host, () => process.send('listening'));
  server.keepAliveTimeout = 60_000;
}

// The default in-memory adapter keeps at most 1,000 entries (a least-recently-used cache), so
// under load it would forget client assertion and DPoP jtis within a fraction of a second and
// skip most of the replay protection helsenett does. This one keeps every entry until it
// expires. Only the replay detection uses it in this configuration (JWT access tokens are not
// stored).
const store = new Map();
setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt <= now) store.delete(key);
  }
}, 5_000).unref();

class ExpiringMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid() {
    return undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId() {}
}

if (cluster.isPrimary) {
  // One nonce secret and one signing key for all workers, so they behave as one server.
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signingKey = {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(8).toString('hex'),
    alg: 'ES256',
    use: 'sig',
  };
  const env = {
    BENCH_NONCE_SECRET: crypto.randomBytes(32).toString('base64'),
    BENCH_COOKIE_KEY: crypto.randomBytes(32).toString('base64url'),
    BENCH_SIGNING_JWK: JSON.stringify(signingKey),
  };

  let listening = 0;
  let stopping = false;
  for (let i = 0; i < workers; i++) {
    cluster.fork(env);
  }
  cluster.on('message', (_worker, message) => {
    if (message === 'listening' && ++listening === workers) {
      console.log(`ready ${issuer} workers=${workers}`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`oidc-provider.mjs: worker ${worker.process.pid} exited (${signal ?? code})`);
      stopping = true;
      for (const w of Object.values(cluster.workers)) w.kill();
      process.exitCode = 1;
    }
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  await worker();
}
