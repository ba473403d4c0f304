// HelseID (crates/helseid) driven by openid-client v6, a certified OpenID Connect relying party
// that nobody on this project wrote: discovery, client_credentials with private_key_jwt and DPoP
// (nonces included), RFC 9068 access tokens checked with jose, the authorization code flow with
// PKCE through PAR and without it, userinfo, introspection, revocation, registration, and the
// errors a client must get for a wrong key, a replayed assertion and a scope it does not have.
//
// Started by ./run, which makes a synthetic country, registers an interactive client, starts the
// server and passes:
//   HELSEID_ISSUER                 http://127.0.0.1:PORT/helseid
//   HELSEID_SYSTEM_CLIENTS         helseid-clients.jsonl written by `helsenett synth`
//   HELSEID_INTERACTIVE_CLIENT_ID  client registered with `helsenett helseid client add`
//   HELSEID_INTERACTIVE_JWK        file with that client's private JWK
//   HELSEID_REDIRECT_URI           its redirect URI
//   HELSEID_ADMIN_TOKEN            (optional) initial access token for RFC 7591 registration
//
// Prints PASS or FAIL per check, then "N passed, M failed"; exits 1 if any check failed.

import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import * as jose from 'jose'

function required(name) {
  const value = process.env[name]
  if (!value) {
    console.error(`test.mjs: environment variable ${name} is required (see ./run)`)
    process.exit(2)
  }
  return value
}

const ISSUER = required('HELSEID_ISSUER')
const SYSTEM_CLIENTS = readFileSync(required('HELSEID_SYSTEM_CLIENTS'), 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line))
const INTERACTIVE_CLIENT_ID = required('HELSEID_INTERACTIVE_CLIENT_ID')
const INTERACTIVE_JWK = JSON.parse(readFileSync(required('HELSEID_INTERACTIVE_JWK'), 'utf8'))
const REDIRECT_URI = required('HELSEID_REDIRECT_URI')
const ADMIN_TOKEN = process.env.HELSEID_ADMIN_TOKEN || ''

const USER_SCOPE = [
  'openid',
  'profile',
  'helseid://scopes/identity/pid',
  'helseid://scopes/identity/security_level',
  'helseid://scopes/hpr/hpr_number',
  'nhn:kjernejournal/api',
].join(' ')
const CLAIM_PID = 'helseid://claims/identity/pid'
const CLAIM_SECURITY_LEVEL = 'helseid://claims/identity/security_level'
const CLAIM_HPR = 'helseid://claims/hpr/hpr_number'
const CLAIM_ORGNR_PARENT = 'helseid://claims/client/claims/orgnr_parent'

// ---------------------------------------------------------------------------------------------
// Reporting

let passed = 0
let failed = 0

/** Runs one check; a thrown error or a failed assertion is a FAIL with the reason. */
async function check(name, fn) {
  try {
    const note = await fn()
    passed++
    console.log(`PASS  ${name}${note ? `  (${note})` : ''}`)
  } catch (err) {
    failed++
    console.log(`FAIL  ${name}\n      ${describe(err).split('\n').join('\n      ')}`)
  }
}

function describe(err) {
  if (err instanceof client.ResponseBodyError) {
    return `server answered HTTP ${err.status} ${JSON.stringify(err.cause)}`
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    return `server answered HTTP ${err.status} with WWW-Authenticate ${JSON.stringify(err.cause)}`
  }
  if (err instanceof client.AuthorizationResponseError) {
    return `authorization response error ${err.error}: ${err.error_description ?? ''}`
  }
  let text = err?.stack ?? String(err)
  if (err?.code) text = `[${err.code}] ${text}`
  if (err?.cause && !(err.cause instanceof Error)) {
    try {
      text += `\ncause: ${JSON.stringify(err.cause)}`
    } catch {
      /* not serialisable */
    }
  } else if (err?.cause) {
    text += `\ncause: ${describe(err.cause)}`
  }
  return text
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

function assertEqual(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
}

/** Expects `promise` to be rejected with an OAuth error response whose `error` is one of `codes`. */
async function expectOAuthError(promise, codes, what) {
  let result
  try {
    result = await promise
  } catch (err) {
    if (err instanceof client.ResponseBodyError) {
      assert(
        codes.includes(err.error),
        `${what}: expected error ${codes.join(' or ')}, got HTTP ${err.status} ${JSON.stringify(err.cause)}`,
      )
      return `HTTP ${err.status} ${err.error}`
    }
    throw new Error(`${what}: expected an OAuth error response (${codes.join(' or ')}), got: ${describe(err)}`)
  }
  throw new Error(`${what}: expected error ${codes.join(' or ')}, but the request succeeded: ${JSON.stringify(result)}`)
}

/**
 * Expects a protected-resource refusal: a WWW-Authenticate challenge (RFC 6750 §3, RFC 9449 §7.1)
 * with one of the `[status, error]` pairs in `accepted`.
 */
async function expectChallenge(promise, accepted, what) {
  const wanted = accepted.map(([status, error]) => `HTTP ${status} error="${error}"`).join(' or ')
  let result
  try {
    result = await promise
  } catch (err) {
    if (err instanceof client.WWWAuthenticateChallengeError) {
      const errors = err.cause.map((c) => c.parameters.error)
      assert(
        accepted.some(([status, error]) => err.status === status && errors.includes(error)),
        `${what}: expected ${wanted}, got HTTP ${err.status} with WWW-Authenticate ${JSON.stringify(err.cause)}`,
      )
      return `HTTP ${err.status}, WWW-Authenticate ${err.cause
        .map((c) => `${c.scheme} error="${c.parameters.error}" error_description="${c.parameters.error_description ?? ''}"`)
        .join(', ')}`
    }
    throw new Error(`${what}: expected ${wanted} with a WWW-Authenticate challenge, got: ${describe(err)}`)
  }
  const body = result instanceof Response ? `HTTP ${result.status} ${await result.text()}` : JSON.stringify(result)
  throw new Error(`${what}: expected ${wanted}, but got ${body}`)
}

// ---------------------------------------------------------------------------------------------
// HTTP recording: every request openid-client makes goes through this fetch, so that the checks
// can see the exchanges themselves (the DPoP nonce round trip in particular).

const exchanges = []
/** When set, the next requests carry this DPoP header instead of openid-client's fresh proof. */
let dpopOverride

async function recordingFetch(url, options) {
  if (dpopOverride && options.headers.dpop) options.headers.dpop = dpopOverride
  const response = await fetch(url, options)
  let body
  try {
    body = await response.clone().text()
  } catch {
    body = undefined
  }
  exchanges.push({
    method: options.method,
    url: String(url),
    requestHeaders: { ...options.headers },
    status: response.status,
    responseHeaders: response.headers,
    body,
  })
  return response
}

function exchangesSince(mark, url) {
  return exchanges.slice(mark).filter((e) => e.url === url)
}

// ---------------------------------------------------------------------------------------------
// Clients

async function privateKey(jwk) {
  return { key: await jose.importJWK(jwk, 'ES256'), kid: jwk.kid }
}

async function configure(clientId, clientAuthKey, metadata = {}, authOptions) {
  const config = await client.discovery(
    new URL(ISSUER),
    clientId,
    { id_token_signed_response_alg: 'ES256', ...metadata },
    client.PrivateKeyJwt(clientAuthKey, authOptions),
    { execute: [client.allowInsecureRequests] },
  )
  config[client.customFetch] = recordingFetch
  return config
}

async function thumbprint(keyPair) {
  return jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey), 'sha256')
}

function decodeDPoPProof(headers) {
  const value = headers.dpop ?? headers.DPoP
  return value ? jose.decodeJwt(value) : undefined
}

// ---------------------------------------------------------------------------------------------
// The browser: the built-in test identity provider's login page.

function decodeEntities(text) {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
}

function attributes(tag) {
  const attrs = {}
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3])
  }
  return attrs
}

/**
 * Opens `authorizationUrl` as a browser would, signs in as the first person listed under
 * `section` ("Health personnel" or "Citizens"), and returns the URL the browser is redirected
 * to (the authorization response) and the fødselsnummer signed in with.
 */
async function signIn(authorizationUrl, section) {
  const page = await fetch(authorizationUrl, { redirect: 'manual' })
  const html = await page.text()
  if (page.status !== 200) {
    throw new Error(`GET ${authorizationUrl} answered HTTP ${page.status} ${page.headers.get('location') ?? ''} ${html.slice(0, 500)}`)
  }
  const heading = html.search(new RegExp(`<h2>\\s*${section}\\s*</h2>`, 'i'))
  assert(heading >= 0, `the login page has no "${section}" section:\n${html.slice(0, 1500)}`)
  const formStart = html.lastIndexOf('<form', heading)
  assert(formStart >= 0, 'the login page has no form around the people listed')
  const formEnd = html.indexOf('</form>', heading)
  const formTag = html.slice(formStart, html.indexOf('>', formStart) + 1)
  const form = attributes(formTag)
  assertEqual((form.method ?? 'get').toLowerCase(), 'post', 'the login form method')
  const fields = new URLSearchParams()
  for (const m of html.slice(formStart, formEnd).matchAll(/<input\b[^>]*>/gi)) {
    const input = attributes(m[0])
    if (input.type === 'hidden' && input.name) fields.append(input.name, input.value ?? '')
  }
  assert(fields.get('request'), 'the login form has no hidden "request" field')
  const button = html
    .slice(heading, formEnd)
    .match(/<button\b[^>]*\bname\s*=\s*"pid"[^>]*>/i)
  assert(button, `no pid button under "${section}"`)
  const pid = attributes(button[0]).value
  assert(/^\d{11}$/.test(pid ?? ''), `the pid button's value is not 11 digits: ${pid}`)
  fields.append('pid', pid)

  const action = new URL(form.action ?? '', page.url || authorizationUrl)
  assertEqual(action.href, `${ISSUER}/connect/login`, 'the login form action')
  const login = await fetch(action, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: fields,
    redirect: 'manual',
  })
  const location = login.headers.get('location')
  if (![302, 303].includes(login.status) || !location) {
    throw new Error(`POST ${action} answered HTTP ${login.status} without a redirect: ${(await login.text()).slice(0, 500)}`)
  }
  const callback = new URL(location, action)
  assert(
    callback.href.startsWith(`${REDIRECT_URI}?`),
    `the login redirected to ${callback.href}, not to the redirect URI ${REDIRECT_URI}`,
  )
  return { callback, pid }
}

/** Fresh PKCE, state and nonce for one authorization request. */
async function authorizationParameters() {
  const verifier = client.randomPKCECodeVerifier()
  return {
    verifier,
    state: client.randomState(),
    nonce: client.randomNonce(),
    async build(extra = {}) {
      return {
        redirect_uri: REDIRECT_URI,
        scope: USER_SCOPE,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state: this.state,
        nonce: this.nonce,
        ...extra,
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------
// The checks

const system = SYSTEM_CLIENTS.find((c) => c.scope.split(' ').includes('nhn:msh/api'))
const other = SYSTEM_CLIENTS.find((c) => c !== system)
if (!system || !other) {
  console.error('test.mjs: the clients file needs two clients, one with scope nhn:msh/api')
  process.exit(2)
}
const JWKS = jose.createRemoteJWKSet(new URL(`${ISSUER}/jwks`))
const state = {}

console.log(`HelseID at ${ISSUER}, checked with openid-client ${await packageVersion('openid-client')} and jose ${await packageVersion('jose')}`)
console.log(`system client ${system.client_id} (orgnr ${system.orgnr_parent}), interactive client ${INTERACTIVE_CLIENT_ID}`)

async function packageVersion(name) {
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(readFileSync(url, 'utf8')).version
}

// 1. Discovery
await check('1 discovery: openid-client accepts the metadata (issuer matches, endpoints present)', async () => {
  state.sys = await configure(system.client_id, await privateKey(system.private_jwk))
  const m = state.sys.serverMetadata()
  assertEqual(m.issuer, ISSUER, 'issuer')
  state.jwksUri = m.jwks_uri
  for (const endpoint of [
    'authorization_endpoint',
    'token_endpoint',
    'pushed_authorization_request_endpoint',
    'userinfo_endpoint',
    'introspection_endpoint',
    'revocation_endpoint',
    'jwks_uri',
  ]) {
    assert(typeof m[endpoint] === 'string' && URL.canParse(m[endpoint]), `${endpoint} missing or not a URL: ${m[endpoint]}`)
  }
  assert(m.token_endpoint_auth_methods_supported?.includes('private_key_jwt'), 'private_key_jwt not in token_endpoint_auth_methods_supported')
  assert(m.token_endpoint_auth_signing_alg_values_supported?.includes('ES256'), 'ES256 not in token_endpoint_auth_signing_alg_values_supported')
  assert(m.dpop_signing_alg_values_supported?.includes('ES256'), 'ES256 not in dpop_signing_alg_values_supported')
  assert(m.id_token_signing_alg_values_supported?.includes('ES256'), 'ES256 not in id_token_signing_alg_values_supported')
  assert(state.sys.serverMetadata().supportsPKCE('S256'), 'S256 PKCE not advertised (code_challenge_methods_supported)')
  assert(m.authorization_response_iss_parameter_supported === true, 'authorization_response_iss_parameter_supported is not true')
  assert(m.response_types_supported?.includes('code'), 'response type code not supported')
  return `${Object.keys(m).length} metadata fields`
})

await check('1 discovery: JWKS has public ES256 signing keys with kid, no private parts', async () => {
  const response = await fetch(state.jwksUri ?? `${ISSUER}/jwks`)
  assertEqual(response.status, 200, 'HTTP status of jwks_uri')
  const jwks = await response.json()
  assert(Array.isArray(jwks.keys) && jwks.keys.length > 0, 'no keys')
  for (const key of jwks.keys) {
    assert(key.kid, `a key without kid: ${JSON.stringify(key)}`)
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) {
      assert(!(secret in key), `key ${key.kid} has the private member ${secret}`)
    }
  }
  assert(jwks.keys.some((k) => k.kty === 'EC' && k.crv === 'P-256'), 'no P-256 key for ES256')
  return `${jwks.keys.length} key(s)`
})

// 2. client_credentials with private_key_jwt and DPoP
await check('2 client_credentials: private_key_jwt + DPoP, nonce retry, token_type DPoP', async () => {
  state.sysDPoPKeys = await client.randomDPoPKeyPair('ES256')
  state.sysDPoP = client.getDPoPHandle(state.sys, state.sysDPoPKeys)
  const mark = exchanges.length
  const tokens = await client.clientCredentialsGrant(state.sys, { scope: 'nhn:msh/api' }, { DPoP: state.sysDPoP })
  state.sysTokens = tokens
  assertEqual(tokens.token_type?.toLowerCase(), 'dpop', 'token_type')
  assert(tokens.expires_in > 0, `expires_in ${tokens.expires_in}`)

  const requests = exchangesSince(mark, state.sys.serverMetadata().token_endpoint)
  assertEqual(requests.length, 2, 'token requests (one refused for want of a nonce, one retried with it)')
  const [first, second] = requests
  assertEqual(first.status, 400, 'first token request status')
  assertEqual(JSON.parse(first.body).error, 'use_dpop_nonce', 'first token request error')
  const nonce = first.responseHeaders.get('dpop-nonce')
  assert(nonce, 'the use_dpop_nonce response has no DPoP-Nonce header')
  assertEqual(decodeDPoPProof(first.requestHeaders)?.nonce, undefined, 'nonce in the first proof')
  assertEqual(decodeDPoPProof(second.requestHeaders)?.nonce, nonce, 'nonce in the retried proof')
  assertEqual(second.status, 200, 'retried token request status')
  const raw = JSON.parse(second.body)
  assertEqual(raw.token_type, 'DPoP', 'token_type as sent')
  assert(second.responseHeaders.get('cache-control')?.includes('no-store'), 'token response without Cache-Control: no-store (RFC 6749 §5.1)')
  return `400 use_dpop_nonce, then 200 token_type ${raw.token_type}`
})

await check('2 client_credentials: access token is an RFC 9068 at+jwt (signature, iss, aud nhn:msh, claims)', async () => {
  assert(state.sysTokens, 'no token from the previous check')
  const { payload, protectedHeader } = await jose.jwtVerify(state.sysTokens.access_token, JWKS, {
    typ: 'at+jwt',
    issuer: ISSUER,
    audience: 'nhn:msh',
    algorithms: ['ES256'],
  })
  assert(protectedHeader.kid, 'no kid in the access token header')
  for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
    assert(payload[claim] !== undefined, `RFC 9068 §2.2 claim ${claim} missing`)
  }
  assertEqual(payload.client_id, system.client_id, 'client_id')
  assert(String(payload.scope).split(' ').includes('nhn:msh/api'), `scope ${payload.scope}`)
  assertEqual(payload[CLAIM_ORGNR_PARENT], system.orgnr_parent, CLAIM_ORGNR_PARENT)
  assert(!(CLAIM_PID in payload), 'a system token carries a person identifier')
  state.sysClaims = payload
  return `aud ${JSON.stringify(payload.aud)}, sub ${payload.sub}, exp in ${payload.exp - payload.iat} s`
})

await check('2 client_credentials: cnf.jkt is the DPoP key thumbprint (RFC 9449 §6)', async () => {
  assert(state.sysClaims, 'no verified token from the previous check')
  const jkt = await thumbprint(state.sysDPoPKeys)
  assertEqual(state.sysClaims.cnf?.jkt, jkt, 'cnf.jkt')
  return jkt
})

await check('2 client_credentials: a second grant reuses the server nonce (no extra round trip)', async () => {
  assert(state.sysDPoP, 'no DPoP handle')
  const mark = exchanges.length
  const tokens = await client.clientCredentialsGrant(state.sys, { scope: 'nhn:msh/api' }, { DPoP: state.sysDPoP })
  const requests = exchangesSince(mark, state.sys.serverMetadata().token_endpoint)
  assertEqual(requests.map((r) => r.status).join(','), '200', 'token request statuses')
  assert(tokens.access_token !== state.sysTokens.access_token, 'the same access token twice')
})

// 3. Protected resource calls with the system token
await check('3 protected resource: DPoP-bound system token (aud nhn:msh, no openid) is refused at userinfo', async () => {
  assert(state.sysTokens, 'no system token')
  // Either answer conforms: the token is not for userinfo (RFC 6750 §3.1 invalid_token, 401) or
  // lacks the openid scope (insufficient_scope, 403).
  return expectChallenge(
    client.fetchProtectedResource(
      state.sys,
      state.sysTokens.access_token,
      new URL(state.sys.serverMetadata().userinfo_endpoint),
      'GET',
      null,
      undefined,
      { DPoP: state.sysDPoP },
    ),
    [
      [401, 'invalid_token'],
      [403, 'insufficient_scope'],
    ],
    'userinfo with a system token',
  )
})

// 4. Authorization code + PKCE, through PAR and without it
await check('4 code flow: interactive client discovery', async () => {
  state.user = await configure(INTERACTIVE_CLIENT_ID, await privateKey(INTERACTIVE_JWK), {
    redirect_uris: [REDIRECT_URI],
    response_types: ['code'],
  })
})

await check('4 code flow with PAR + DPoP: health personnel signs in, tokens and ID token verified', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  state.parDPoPKeys = await client.randomDPoPKeyPair('ES256')
  state.parDPoP = client.getDPoPHandle(state.user, state.parDPoPKeys)
  const mark = exchanges.length
  const url = await client.buildAuthorizationUrlWithPAR(state.user, await auth.build(), { DPoP: state.parDPoP })
  const par = exchangesSince(mark, state.user.serverMetadata().pushed_authorization_request_endpoint)
  assert(par.length >= 1 && par.at(-1).status === 201, `PAR statuses ${par.map((r) => r.status)}`)
  assert(url.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'), `authorization URL ${url}`)
  assertEqual(url.searchParams.get('client_id'), INTERACTIVE_CLIENT_ID, 'client_id in the authorization URL')
  assert(!url.searchParams.has('code_challenge'), 'PAR URL carries the request parameters')

  const { callback, pid } = await signIn(url, 'Health personnel')
  assertEqual(callback.searchParams.get('iss'), ISSUER, 'iss in the authorization response (RFC 9207)')
  state.parCallback = callback
  const tokens = await client.authorizationCodeGrant(
    state.user,
    callback,
    { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce, idTokenExpected: true },
    undefined,
    { DPoP: state.parDPoP },
  )
  state.parTokens = tokens
  assertEqual(tokens.token_type?.toLowerCase(), 'dpop', 'token_type')
  const idt = tokens.claims()
  assert(idt, 'no ID token')
  assertEqual(idt.iss, ISSUER, 'ID token iss')
  assertEqual(idt.aud === INTERACTIVE_CLIENT_ID || (Array.isArray(idt.aud) && idt.aud.includes(INTERACTIVE_CLIENT_ID)), true, 'ID token aud contains the client')
  assertEqual(idt.nonce, auth.nonce, 'ID token nonce')
  assertEqual(idt[CLAIM_PID], pid, `ID token ${CLAIM_PID}`)
  assertEqual(idt[CLAIM_SECURITY_LEVEL], '4', `ID token ${CLAIM_SECURITY_LEVEL}`)
  assert(/^\d+$/.test(String(idt[CLAIM_HPR] ?? '')), `ID token ${CLAIM_HPR} missing for health personnel: ${idt[CLAIM_HPR]}`)
  state.parIdToken = idt
  state.parPid = pid
  return `pid ${pid}, hpr ${idt[CLAIM_HPR]}, sub ${idt.sub}`
})

await check('4 code flow with PAR: ID token header is ES256 and verifies against the JWKS', async () => {
  assert(state.parTokens, 'no tokens')
  const { protectedHeader } = await jose.jwtVerify(state.parTokens.id_token, JWKS, {
    issuer: ISSUER,
    audience: INTERACTIVE_CLIENT_ID,
    algorithms: ['ES256'],
  })
  assertEqual(protectedHeader.alg, 'ES256', 'alg')
})

await check('4 code flow with PAR: user access token is at+jwt with person claims and cnf.jkt of the PAR DPoP key', async () => {
  assert(state.parTokens, 'no tokens')
  const { payload } = await jose.jwtVerify(state.parTokens.access_token, JWKS, {
    typ: 'at+jwt',
    issuer: ISSUER,
    audience: 'nhn:kjernejournal',
    algorithms: ['ES256'],
  })
  const aud = [payload.aud].flat()
  assert(aud.includes(ISSUER), `aud ${JSON.stringify(payload.aud)} lacks the issuer (scope has openid)`)
  assertEqual(payload.client_id, INTERACTIVE_CLIENT_ID, 'client_id')
  assertEqual(payload[CLAIM_PID], state.parPid, CLAIM_PID)
  assertEqual(payload[CLAIM_SECURITY_LEVEL], '4', CLAIM_SECURITY_LEVEL)
  assertEqual(payload[CLAIM_HPR], state.parIdToken[CLAIM_HPR], CLAIM_HPR)
  assertEqual(payload.sub, state.parIdToken.sub, 'sub (same as the ID token)')
  assertEqual(payload.cnf?.jkt, await thumbprint(state.parDPoPKeys), 'cnf.jkt')
  return `aud ${JSON.stringify(payload.aud)}`
})

await check('4 code flow with PAR: fetchUserInfo (DPoP) returns the same sub and person', async () => {
  assert(state.parTokens, 'no tokens')
  const info = await client.fetchUserInfo(state.user, state.parTokens.access_token, state.parIdToken.sub, { DPoP: state.parDPoP })
  assertEqual(info.sub, state.parIdToken.sub, 'sub')
  assertEqual(info[CLAIM_PID], state.parPid, CLAIM_PID)
  return `sub ${info.sub}, name ${info.name}`
})

await check('3 protected resource: fetchProtectedResource GET userinfo with the user token (DPoP) is 200 JSON', async () => {
  assert(state.parTokens, 'no tokens')
  const response = await client.fetchProtectedResource(
    state.user,
    state.parTokens.access_token,
    new URL(state.user.serverMetadata().userinfo_endpoint),
    'GET',
    null,
    undefined,
    { DPoP: state.parDPoP },
  )
  assertEqual(response.status, 200, 'HTTP status')
  const body = await response.json()
  assertEqual(body.sub, state.parIdToken.sub, 'sub')
})

await check('3 protected resource: the DPoP-bound user token sent as a Bearer token is refused (RFC 9449 §7.2: 401)', async () => {
  assert(state.parTokens, 'no user token')
  // The same token with a DPoP proof is accepted (the checks above), so the refusal is the scheme's.
  return expectChallenge(
    client.fetchProtectedResource(
      state.user,
      state.parTokens.access_token,
      new URL(state.user.serverMetadata().userinfo_endpoint),
      'GET',
    ),
    [[401, 'invalid_token']],
    'userinfo with a DPoP-bound token as Bearer',
  )
})

await check('4 code flow: a code is single-use; using it again revokes the token its first use got', async () => {
  assert(state.user, 'no interactive client configuration')
  // A sign-in of its own, so that the revocation does not touch the tokens later checks use.
  const auth = await authorizationParameters()
  const dpop = client.getDPoPHandle(state.user, await client.randomDPoPKeyPair('ES256'))
  const url = await client.buildAuthorizationUrlWithPAR(state.user, await auth.build(), { DPoP: dpop })
  const { callback } = await signIn(url, 'Health personnel')
  const checks = { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce, idTokenExpected: true }
  const tokens = await client.authorizationCodeGrant(state.user, callback, checks, undefined, { DPoP: dpop })
  const second = await expectOAuthError(
    client.authorizationCodeGrant(state.user, callback, checks, undefined, { DPoP: dpop }),
    ['invalid_grant'],
    'second redemption',
  )
  const revoked = await expectChallenge(
    client.fetchUserInfo(state.user, tokens.access_token, tokens.claims().sub, { DPoP: dpop }),
    [[401, 'invalid_token']],
    'userinfo with the first redemption\'s token',
  )
  return `${second}; ${revoked}`
})

await check('4 code flow without PAR: citizen signs in via buildAuthorizationUrl, DPoP tokens, no HPR number', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  const url = client.buildAuthorizationUrl(state.user, await auth.build())
  assertEqual(url.origin + url.pathname, state.user.serverMetadata().authorization_endpoint, 'authorization URL')
  const { callback, pid } = await signIn(url, 'Citizens')
  assertEqual(callback.searchParams.get('iss'), ISSUER, 'iss in the authorization response (RFC 9207)')
  state.plainDPoPKeys = await client.randomDPoPKeyPair('ES256')
  state.plainDPoP = client.getDPoPHandle(state.user, state.plainDPoPKeys)
  const tokens = await client.authorizationCodeGrant(
    state.user,
    callback,
    { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce, idTokenExpected: true },
    undefined,
    { DPoP: state.plainDPoP },
  )
  assertEqual(tokens.token_type?.toLowerCase(), 'dpop', 'token_type')
  const idt = tokens.claims()
  assertEqual(idt[CLAIM_PID], pid, CLAIM_PID)
  assertEqual(idt[CLAIM_SECURITY_LEVEL], '4', CLAIM_SECURITY_LEVEL)
  assert(!(CLAIM_HPR in idt), `a citizen got ${CLAIM_HPR} ${idt[CLAIM_HPR]}`)
  assert(idt.sub !== state.parIdToken?.sub, 'two people got the same sub')
  const { payload } = await jose.jwtVerify(tokens.access_token, JWKS, {
    typ: 'at+jwt',
    issuer: ISSUER,
    audience: 'nhn:kjernejournal',
    algorithms: ['ES256'],
  })
  assertEqual(payload.cnf?.jkt, await thumbprint(state.plainDPoPKeys), 'cnf.jkt')
  const info = await client.fetchUserInfo(state.user, tokens.access_token, idt.sub, { DPoP: state.plainDPoP })
  assertEqual(info.sub, idt.sub, 'userinfo sub')
  state.plainTokens = tokens
  state.plainSub = idt.sub
  return `pid ${pid}, sub ${idt.sub}`
})

await check('4 code flow: a wrong PKCE code_verifier gives invalid_grant (RFC 7636 §4.6)', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  const { callback } = await signIn(client.buildAuthorizationUrl(state.user, await auth.build()), 'Health personnel')
  const DPoP = client.getDPoPHandle(state.user, await client.randomDPoPKeyPair('ES256'))
  return expectOAuthError(
    client.authorizationCodeGrant(
      state.user,
      callback,
      { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: auth.state, expectedNonce: auth.nonce },
      undefined,
      { DPoP },
    ),
    ['invalid_grant'],
    'token request with another verifier',
  )
})

await check('4 code flow: max_age requested, the ID token carries a recent auth_time (OIDC Core §3.1.2.1)', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  const url = client.buildAuthorizationUrl(state.user, await auth.build({ max_age: '300' }))
  const { callback } = await signIn(url, 'Health personnel')
  const DPoP = client.getDPoPHandle(state.user, await client.randomDPoPKeyPair('ES256'))
  const tokens = await client.authorizationCodeGrant(
    state.user,
    callback,
    { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce, maxAge: 300 },
    undefined,
    { DPoP },
  )
  const { auth_time } = tokens.claims()
  return `auth_time ${auth_time}, ${Math.floor(Date.now() / 1000) - auth_time} s ago`
})

/** An authorization request the server must answer by redirecting back with `error`. */
async function expectAuthorizationError(params, error) {
  const auth = await authorizationParameters()
  const all = { ...(await auth.build()), ...params }
  for (const [name, value] of Object.entries(all)) if (value === undefined) delete all[name]
  const url = client.buildAuthorizationUrl(state.user, all)
  const response = await fetch(url, { redirect: 'manual' })
  const location = response.headers.get('location')
  if (![302, 303].includes(response.status) || !location) {
    throw new Error(`expected a redirect back with error=${error}, got HTTP ${response.status} ${(await response.text()).slice(0, 300)}`)
  }
  const callback = new URL(location, url)
  assert(callback.href.startsWith(`${REDIRECT_URI}?`), `redirected to ${callback.href}`)
  let result
  try {
    result = await client.authorizationCodeGrant(state.user, callback, { pkceCodeVerifier: auth.verifier, expectedState: auth.state })
  } catch (err) {
    if (err instanceof client.AuthorizationResponseError) {
      assertEqual(err.error, error, 'error in the authorization response')
      return `${err.error}: ${err.error_description ?? ''}`
    }
    throw new Error(`expected an authorization error response ${error}, got: ${describe(err)}`)
  }
  throw new Error(`expected error ${error}, got tokens ${JSON.stringify(result)}`)
}

await check('4 authorization error: a scope the client was not given comes back as invalid_scope with state and iss', async () => {
  assert(state.user, 'no interactive client configuration')
  return expectAuthorizationError({ scope: `${USER_SCOPE} nhn:msh/api` }, 'invalid_scope')
})

await check('4 authorization error: a request without PKCE comes back as invalid_request', async () => {
  assert(state.user, 'no interactive client configuration')
  return expectAuthorizationError({ code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request')
})

await check('4 authorization error: an unregistered redirect_uri is never redirected to (RFC 6749 §4.1.2.1)', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  const url = client.buildAuthorizationUrl(state.user, await auth.build({ redirect_uri: 'http://127.0.0.1:9/elsewhere' }))
  const response = await fetch(url, { redirect: 'manual' })
  assert(!response.headers.get('location'), `redirected to ${response.headers.get('location')}`)
  assert(response.status >= 400, `HTTP ${response.status}`)
  return `HTTP ${response.status}, no redirect`
})

await check('4 code flow: a code bound to a DPoP key at PAR cannot be redeemed with another key (RFC 9449 §10)', async () => {
  assert(state.user, 'no interactive client configuration')
  const auth = await authorizationParameters()
  const bound = client.getDPoPHandle(state.user, await client.randomDPoPKeyPair('ES256'))
  const url = await client.buildAuthorizationUrlWithPAR(state.user, await auth.build(), { DPoP: bound })
  const { callback } = await signIn(url, 'Health personnel')
  const otherKey = client.getDPoPHandle(state.user, await client.randomDPoPKeyPair('ES256'))
  return expectOAuthError(
    client.authorizationCodeGrant(
      state.user,
      callback,
      { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce },
      undefined,
      { DPoP: otherKey },
    ),
    ['invalid_grant', 'invalid_dpop_proof'],
    'token request with another DPoP key',
  )
})

// 5. Introspection and revocation
await check('5 introspection: own client_credentials token is active with its claims', async () => {
  assert(state.sysTokens, 'no system token')
  const info = await client.tokenIntrospection(state.sys, state.sysTokens.access_token)
  assertEqual(info.active, true, 'active')
  assertEqual(info.client_id, system.client_id, 'client_id')
  assert(String(info.scope).split(' ').includes('nhn:msh/api'), `scope ${info.scope}`)
  assertEqual(info.iss, ISSUER, 'iss')
  return `token_type ${info.token_type}, exp ${info.exp}`
})

await check('5 introspection: own user token is active with the same sub', async () => {
  assert(state.plainTokens, 'no user token')
  const info = await client.tokenIntrospection(state.user, state.plainTokens.access_token)
  assertEqual(info.active, true, 'active')
  assertEqual(info.sub, state.plainSub, 'sub')
  assertEqual(info.client_id, INTERACTIVE_CLIENT_ID, 'client_id')
})

await check('5 introspection: a token that is not a token is inactive', async () => {
  const info = await client.tokenIntrospection(state.user ?? state.sys, 'not-a-token')
  assertEqual(info.active, false, 'active')
})

await check('5 revocation: revoked user token is rejected at userinfo (401 invalid_token) and inactive at introspection', async () => {
  assert(state.plainTokens, 'no user token')
  await client.tokenRevocation(state.user, state.plainTokens.access_token)
  const refusal = await expectChallenge(
    client.fetchUserInfo(state.user, state.plainTokens.access_token, state.plainSub, { DPoP: state.plainDPoP }),
    [[401, 'invalid_token']],
    'userinfo after revocation',
  )
  const info = await client.tokenIntrospection(state.user, state.plainTokens.access_token)
  assertEqual(info.active, false, 'introspection active after revocation')
  return refusal
})

await check('5 revocation: revoked client_credentials token is inactive; revoking it again is still 200 (RFC 7009 §2.2)', async () => {
  assert(state.sysTokens, 'no system token')
  await client.tokenRevocation(state.sys, state.sysTokens.access_token)
  const info = await client.tokenIntrospection(state.sys, state.sysTokens.access_token)
  assertEqual(info.active, false, 'active after revocation')
  await client.tokenRevocation(state.sys, state.sysTokens.access_token)
  await client.tokenRevocation(state.sys, 'not-a-token')
})

await check('5 revocation: the PAR user token still works (revocation is per token)', async () => {
  assert(state.parTokens, 'no tokens')
  const info = await client.fetchUserInfo(state.user, state.parTokens.access_token, state.parIdToken.sub, { DPoP: state.parDPoP })
  assertEqual(info.sub, state.parIdToken.sub, 'sub')
})

// 6. Errors openid-client must surface
await check('6 wrong key: assertion signed with another client\'s key gives invalid_client', async () => {
  const impostor = await configure(system.client_id, await privateKey(other.private_jwk))
  const DPoP = client.getDPoPHandle(impostor, await client.randomDPoPKeyPair('ES256'))
  return expectOAuthError(
    client.clientCredentialsGrant(impostor, { scope: 'nhn:msh/api' }, { DPoP }),
    ['invalid_client'],
    'client_credentials with the wrong key',
  )
})

await check('6 wrong key: assertion signed with a fresh key (same kid) gives invalid_client', async () => {
  const { privateKey: key } = await jose.generateKeyPair('ES256')
  const impostor = await configure(system.client_id, { key, kid: system.private_jwk.kid })
  const DPoP = client.getDPoPHandle(impostor, await client.randomDPoPKeyPair('ES256'))
  return expectOAuthError(
    client.clientCredentialsGrant(impostor, { scope: 'nhn:msh/api' }, { DPoP }),
    ['invalid_client'],
    'client_credentials with a fresh key',
  )
})

await check('6 invalid_scope: a scope the client was not given', async () => {
  assert(state.sys, 'no system client configuration')
  const allowed = new Set(system.scope.split(' '))
  const scope =
    (state.sys.serverMetadata().scopes_supported ?? []).find((s) => s.startsWith('nhn:') && !allowed.has(s)) ??
    'nhn:conformance/never-granted'
  const note = await expectOAuthError(
    client.clientCredentialsGrant(state.sys, { scope }, { DPoP: state.sysDPoP }),
    ['invalid_scope'],
    `client_credentials with scope ${scope}`,
  )
  return `${scope}: ${note}`
})

await check('6 replayed client assertion (same jti) gives invalid_client', async () => {
  const jti = `conformance-${client.randomState()}`
  const replaying = await configure(system.client_id, await privateKey(system.private_jwk), {}, {
    [client.modifyAssertion]: (_header, payload) => {
      payload.jti = jti
    },
  })
  const DPoP = client.getDPoPHandle(replaying, await client.randomDPoPKeyPair('ES256'))
  // The first grant may take the nonce round trip; the server checks the proof's nonce before it
  // spends the assertion, so both attempts may carry the same jti.
  await client.clientCredentialsGrant(replaying, { scope: 'nhn:msh/api' }, { DPoP })
  return expectOAuthError(
    client.clientCredentialsGrant(replaying, { scope: 'nhn:msh/api' }, { DPoP }),
    ['invalid_client'],
    'second grant with the same assertion jti',
  )
})

await check('6 DPoP proof replay: a proof used once is refused at the token endpoint (RFC 9449 §11.1)', async () => {
  assert(state.sys, 'no system client configuration')
  const DPoP = client.getDPoPHandle(state.sys, await client.randomDPoPKeyPair('ES256'))
  const mark = exchanges.length
  await client.clientCredentialsGrant(state.sys, { scope: 'nhn:msh/api' }, { DPoP })
  const used = exchangesSince(mark, state.sys.serverMetadata().token_endpoint).find((e) => e.status === 200)
  assert(used?.requestHeaders.dpop, 'no successful token request with a DPoP proof to replay')
  dpopOverride = used.requestHeaders.dpop
  try {
    return await expectOAuthError(
      client.clientCredentialsGrant(state.sys, { scope: 'nhn:msh/api' }, { DPoP }),
      ['invalid_dpop_proof'],
      'token request with a replayed DPoP proof',
    )
  } finally {
    dpopOverride = undefined
  }
})

await check('6 DPoP proof replay: a proof used once is refused at userinfo (RFC 9449 §11.1)', async () => {
  assert(state.parTokens, 'no user token')
  const url = state.user.serverMetadata().userinfo_endpoint
  const mark = exchanges.length
  await client.fetchUserInfo(state.user, state.parTokens.access_token, state.parIdToken.sub, { DPoP: state.parDPoP })
  const used = exchangesSince(mark, url).find((e) => e.status === 200)
  assert(used?.requestHeaders.dpop, 'no successful userinfo request with a DPoP proof to replay')
  dpopOverride = used.requestHeaders.dpop
  try {
    return await expectChallenge(
      client.fetchUserInfo(state.user, state.parTokens.access_token, state.parIdToken.sub, { DPoP: state.parDPoP }),
      [[401, 'invalid_dpop_proof']],
      'userinfo with a replayed DPoP proof',
    )
  } finally {
    dpopOverride = undefined
  }
})

await check('6 DPoP required: a token request without a proof is refused', async () => {
  assert(state.sys, 'no system client configuration')
  return expectOAuthError(
    client.clientCredentialsGrant(state.sys, { scope: 'nhn:msh/api' }),
    ['invalid_request', 'invalid_dpop_proof', 'invalid_client', 'unauthorized_client'],
    'client_credentials without DPoP',
  )
})

await check('6 unsupported grant: refresh_token is refused', async () => {
  assert(state.sys, 'no system client configuration')
  return expectOAuthError(
    client.refreshTokenGrant(state.sys, 'not-a-refresh-token', undefined, { DPoP: state.sysDPoP }),
    ['unsupported_grant_type', 'invalid_grant', 'unauthorized_client'],
    'refresh_token grant',
  )
})

// 7. Registration (RFC 7591), when the server was started with an admin token
if (ADMIN_TOKEN) {
  await check('7 registration: dynamicClientRegistration with the initial access token, then a DPoP client_credentials grant', async () => {
    const { publicKey, privateKey: key } = await jose.generateKeyPair('ES256', { extractable: true })
    const publicJwk = { ...(await jose.exportJWK(publicKey)), alg: 'ES256', use: 'sig' }
    publicJwk.kid = await jose.calculateJwkThumbprint(publicJwk)
    const registered = await client.dynamicClientRegistration(
      new URL(ISSUER),
      {
        client_name: 'openid-client conformance (registered)',
        jwks: { keys: [publicJwk] },
        grant_types: ['client_credentials'],
        scope: 'nhn:msh/api',
        token_endpoint_auth_method: 'private_key_jwt',
        dpop_bound_access_tokens: true,
        orgnr_parent: system.orgnr_parent,
      },
      client.PrivateKeyJwt({ key, kid: publicJwk.kid }),
      { initialAccessToken: ADMIN_TOKEN, execute: [client.allowInsecureRequests] },
    )
    registered[client.customFetch] = recordingFetch
    const meta = registered.clientMetadata()
    assert(meta.client_id, 'no client_id')
    assertEqual(meta.orgnr_parent, system.orgnr_parent, 'orgnr_parent echoed')
    const DPoPKeys = await client.randomDPoPKeyPair('ES256')
    const tokens = await client.clientCredentialsGrant(registered, { scope: 'nhn:msh/api' }, { DPoP: client.getDPoPHandle(registered, DPoPKeys) })
    const { payload } = await jose.jwtVerify(tokens.access_token, JWKS, {
      typ: 'at+jwt',
      issuer: ISSUER,
      audience: 'nhn:msh',
      algorithms: ['ES256'],
    })
    assertEqual(payload.client_id, meta.client_id, 'client_id')
    assertEqual(payload[CLAIM_ORGNR_PARENT], system.orgnr_parent, CLAIM_ORGNR_PARENT)
    assertEqual(payload.cnf?.jkt, await thumbprint(DPoPKeys), 'cnf.jkt')
    return `client_id ${meta.client_id}`
  })

  await check('7 registration: without the initial access token it is refused', async () => {
    const { publicKey } = await jose.generateKeyPair('ES256', { extractable: true })
    const response = await fetch(`${ISSUER}/connect/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'no token',
        jwks: { keys: [await jose.exportJWK(publicKey)] },
        grant_types: ['client_credentials'],
        scope: 'nhn:msh/api',
        token_endpoint_auth_method: 'private_key_jwt',
        orgnr_parent: system.orgnr_parent,
      }),
    })
    assert([401, 403].includes(response.status), `HTTP ${response.status} ${await response.text()}`)
    return `HTTP ${response.status}`
  })
}

console.log(`\n${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
