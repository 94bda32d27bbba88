// The JS agent (@icp-sdk/core 6) against the local network's HTTP interface, verifying every
// certificate and query signature with the network's root key, as a browser dapp would.
//
//   node tests/http/client.mjs URL COORDINATOR_ID
//
// Prints one line per check and exits non-zero at the first failure.
import assert from 'node:assert/strict';
import { Actor, HttpAgent, Cbor, Expiry, requestIdOf } from '@icp-sdk/core/agent';
import {
  DelegationChain,
  DelegationIdentity,
  ECDSAKeyIdentity,
  Ed25519KeyIdentity,
} from '@icp-sdk/core/identity';
import { Secp256k1KeyIdentity } from '@icp-sdk/core/identity/secp256k1';
import { IDL } from '@icp-sdk/core/candid';
import { Principal } from '@icp-sdk/core/principal';

const [url, coordinatorText] = process.argv.slice(2);
if (!url || !coordinatorText) {
  console.error('usage: node client.mjs URL COORDINATOR_ID');
  process.exit(2);
}
const coordinator = Principal.fromText(coordinatorText);

// The coordinator's interface, as much of it as the checks use (candid subtyping ignores the
// rest of each record).
const idlFactory = ({ IDL }) => {
  const Error = IDL.Variant({
    Anonymous: IDL.Null,
    NotAuthorized: IDL.Record({ reason: IDL.Text }),
    InvalidArgument: IDL.Record({ field: IDL.Text, reason: IDL.Text }),
    Paused: IDL.Record({ reason: IDL.Text }),
  });
  const Page = IDL.Record({ start: IDL.Nat64, limit: IDL.Nat32 });
  return IDL.Service({
    my_alerts: IDL.Func(
      [IDL.Record({ page: Page, unread_only: IDL.Bool })],
      [IDL.Variant({ Ok: IDL.Record({ total: IDL.Nat64 }), Err: Error })],
      ['query'],
    ),
    mark_alerts_read: IDL.Func(
      [IDL.Vec(IDL.Nat64)],
      [IDL.Variant({ Ok: IDL.Nat32, Err: Error })],
      [],
    ),
  });
};

const agents = [];
async function agentFor(identity) {
  // Fetches the root key from /api/v2/status: every certificate and query signature is then
  // checked against it (the agent's defaults: verifyQuerySignatures = true).
  const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
  agents.push(agent);
  return agent;
}

async function actorFor(identity) {
  return Actor.createActor(idlFactory, { agent: await agentFor(identity), canisterId: coordinator });
}

let checks = 0;
async function check(name, body) {
  await body();
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
}

async function refused(promise, pattern) {
  try {
    await promise;
  } catch (error) {
    const text = `${error?.message ?? error}`;
    assert.match(text, pattern, `expected ${pattern}, got: ${text}`);
    return text;
  }
  assert.fail(`expected a refusal matching ${pattern}`);
}

async function queryAndUpdate(identity) {
  const actor = await actorFor(identity);
  const alerts = await actor.my_alerts({ page: { start: 0n, limit: 5 }, unread_only: false });
  assert.deepEqual(alerts, { Ok: { total: 0n } });
  const marked = await actor.mark_alerts_read([]);
  assert.deepEqual(marked, { Ok: 0 });
}

// A request built and signed by hand, for the refusals the agent would never send.
async function rawCall(identity, content, endpoint = 'call') {
  const request = await identity.transformRequest({ endpoint, request: {}, body: content });
  const path = endpoint === 'call' ? 'api/v4' : 'api/v3';
  const response = await fetch(new URL(`${path}/canister/${coordinator.toText()}/${endpoint}`, url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/cbor' },
    body: Cbor.encode(request.body),
  });
  return { status: response.status, text: await response.text() };
}

function callContent(sender, expiry) {
  return {
    request_type: 'call',
    canister_id: coordinator,
    method_name: 'mark_alerts_read',
    arg: IDL.encode([IDL.Vec(IDL.Nat64)], [[]]),
    sender,
    ingress_expiry: expiry ?? Expiry.fromDeltaInMilliseconds(60_000),
  };
}

const hour = 60 * 60 * 1000;

await check('status: the root key is a 133-byte DER BLS key', async () => {
  const agent = await agentFor(Ed25519KeyIdentity.generate());
  const status = await agent.status();
  assert.equal(status.replica_health_status, 'healthy');
  assert.equal(status.root_key.length, 133);
});

await check('Ed25519 identity: certified update and signed query', async () => {
  await queryAndUpdate(Ed25519KeyIdentity.generate());
});

await check('secp256k1 identity: certified update and signed query', async () => {
  await queryAndUpdate(Secp256k1KeyIdentity.generate());
});

await check('ECDSA P-256 identity (WebCrypto): certified update and signed query', async () => {
  await queryAndUpdate(await ECDSAKeyIdentity.generate());
});

await check('anonymous: accepted by the network, refused by the canister with a typed error', async () => {
  const actor = Actor.createActor(idlFactory, { agent: await agentFor(undefined), canisterId: coordinator });
  assert.deepEqual(await actor.mark_alerts_read([]), { Err: { Anonymous: null } });
});

await check('delegation chain of two: the root principal calls', async () => {
  const root = Ed25519KeyIdentity.generate();
  const middle = Ed25519KeyIdentity.generate();
  const session = Ed25519KeyIdentity.generate();
  const first = await DelegationChain.create(root, middle.getPublicKey(), new Date(Date.now() + hour), {
    targets: [coordinator],
  });
  const chain = await DelegationChain.create(middle, session.getPublicKey(), new Date(Date.now() + hour), {
    previous: first,
  });
  const identity = DelegationIdentity.fromDelegation(session, chain);
  assert.equal(identity.getPrincipal().toText(), root.getPrincipal().toText());
  await queryAndUpdate(identity);
});

await check('a failing update: the reject reaches the caller', async () => {
  const agent = await agentFor(Ed25519KeyIdentity.generate());
  const text = await refused(
    agent.update(coordinator, { methodName: 'no_such_method', arg: IDL.encode([], []) }),
    /IC0536|has no update method/,
  );
  console.log(`#   ${text.split('\n').find(line => /IC0536|no update method/.test(line)).trim()}`);
});

await check('a missing canister: non-replicated rejection', async () => {
  const agent = await agentFor(Ed25519KeyIdentity.generate());
  const missing = Principal.fromText('n5n4y-3aaaa-aaaaa-p777q-cai');
  await refused(
    agent.update(missing, { methodName: 'anything', arg: IDL.encode([], []) }),
    /not found|does not exist|belong|Canister/i,
  );
});

await check('a wrong signature is refused: "Invalid signature"', async () => {
  const key = Ed25519KeyIdentity.generate();
  const other = Ed25519KeyIdentity.generate();
  // Claims `key`'s public key and principal, signs with `other`.
  const forger = {
    getPrincipal: () => key.getPrincipal(),
    transformRequest: async request => {
      const signed = await key.transformRequest(request);
      const requestId = requestIdOf(request.body);
      const domain = new TextEncoder().encode('\x0Aic-request');
      const message = new Uint8Array([...domain, ...requestId]);
      signed.body.sender_sig = await other.sign(message);
      return signed;
    },
  };
  const { status, text } = await rawCall(forger, callContent(key.getPrincipal()));
  assert.equal(status, 400, text);
  assert.match(text, /Invalid signature/);
  console.log(`#   ${status}: ${text.split('\n')[0]}`);
});

await check('an expired delegation is refused', async () => {
  const root = Ed25519KeyIdentity.generate();
  const session = Ed25519KeyIdentity.generate();
  const chain = await DelegationChain.create(root, session.getPublicKey(), new Date(Date.now() - 60_000));
  const identity = DelegationIdentity.fromDelegation(session, chain);
  const { status, text } = await rawCall(identity, callContent(root.getPrincipal()));
  assert.equal(status, 400, text);
  assert.match(text, /Invalid delegation.*expir/i);
  console.log(`#   ${status}: ${text.split('\n')[0]}`);
});

await check('a delegation whose targets exclude the canister is refused', async () => {
  const root = Ed25519KeyIdentity.generate();
  const session = Ed25519KeyIdentity.generate();
  const chain = await DelegationChain.create(root, session.getPublicKey(), new Date(Date.now() + hour), {
    targets: [Principal.fromText('rwlgt-iiaaa-aaaaa-aaaaa-cai')],
  });
  const identity = DelegationIdentity.fromDelegation(session, chain);
  const { status, text } = await rawCall(identity, callContent(root.getPrincipal()));
  assert.equal(status, 400, text);
  assert.match(text, /target/i);
});

await check('a stale expiry is refused with "Invalid request expiry:"', async () => {
  const key = Ed25519KeyIdentity.generate();
  const stale = BigInt(Date.now() - 10 * 60_000) * 1_000_000n;
  const { status, text } = await rawCall(key, callContent(key.getPrincipal(), stale));
  assert.equal(status, 400, text);
  assert.match(text, /Invalid request expiry: /);
  console.log(`#   ${status}: ${text.split('\n')[0]}`);
});

await check('a sender that is not the key\'s principal is refused', async () => {
  const key = Ed25519KeyIdentity.generate();
  const someoneElse = Ed25519KeyIdentity.generate().getPrincipal();
  const { status } = await rawCall(key, callContent(someoneElse));
  assert.equal(status, 400);
});

console.log(`all ${checks} checks passed`);
