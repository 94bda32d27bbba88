// Load on the local network's HTTP interface, through the JS agent (certificates and query
// signatures verified as in a browser), on loopback.
//
//   node tests/http/load.mjs URL install WASM EFFECTIVE_ID   creates a canister (management
//                                                            canister over HTTP), installs the
//                                                            counter module, prints its id
//   node tests/http/load.mjs URL measure CANISTER SECONDS WORKERS
//                                                            updates, then queries; one JSON line
//   node tests/http/load.mjs URL hammer CANISTER ACKED_FILE  updates until the server dies; every
//                                                            acknowledged one appended to ACKED_FILE
//   node tests/http/load.mjs URL count CANISTER              the counter's value
//   node tests/http/load.mjs URL inspect CANISTER            a call its canister_inspect_message
//                                                            refuses: a non-replicated rejection
import { appendFileSync, readFileSync } from 'node:fs';
import { HttpAgent } from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import { IDL } from '@icp-sdk/core/candid';
import { Principal } from '@icp-sdk/core/principal';

const [url, mode, ...rest] = process.argv.slice(2);
const identity = Ed25519KeyIdentity.fromSecretKey(new Uint8Array(32).fill(7));
const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
const management = Principal.fromText('aaaaa-aa');
// `increment` and `counters` return the heap and the stable counter.
const counters = [IDL.Nat64, IDL.Nat64];

// `trusting` skips the client's own BLS verification of the certificate (about 25 ms of a
// Node core each), to measure what the server sustains rather than what one Node process checks.
async function update(canister, methodName, arg, trusting = false) {
  const polling = trusting ? { blsVerify: async () => true } : {};
  const { reply } = await agent.update(canister, { methodName, arg }, polling);
  return reply;
}

async function query(canister, methodName, arg) {
  const response = await agent.query(canister, { methodName, arg });
  if (response.status !== 'replied') throw new Error(`query rejected: ${response.reject_message}`);
  return response.reply.arg;
}

async function install(wasmPath, effective) {
  const create = IDL.encode(
    [IDL.Record({ amount: IDL.Opt(IDL.Nat) })],
    [{ amount: [1_000_000_000_000n] }],
  );
  const { reply } = await agent.update(management, {
    methodName: 'provisional_create_canister_with_cycles',
    arg: create,
    effectiveCanisterId: Principal.fromText(effective),
  });
  const [{ canister_id }] = IDL.decode([IDL.Record({ canister_id: IDL.Principal })], reply);
  const arg = IDL.encode(
    [
      IDL.Record({
        mode: IDL.Variant({ install: IDL.Null }),
        canister_id: IDL.Principal,
        wasm_module: IDL.Vec(IDL.Nat8),
        arg: IDL.Vec(IDL.Nat8),
      }),
    ],
    [
      {
        mode: { install: null },
        canister_id,
        wasm_module: readFileSync(wasmPath),
        arg: IDL.encode([IDL.Nat64], [0n]),
      },
    ],
  );
  await agent.update(management, { methodName: 'install_code', arg, effectiveCanisterId: canister_id });
  console.log(canister_id.toText());
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(seconds, workers, once) {
  const latencies = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        await once();
        latencies.push(performance.now() - start);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    count: latencies.length,
  };
}

if (mode === 'install') {
  await install(rest[0], rest[1]);
} else if (mode === 'measure') {
  const canister = Principal.fromText(rest[0]);
  const seconds = Number(rest[1]);
  const workers = Number(rest[2]);
  const empty = IDL.encode([], []);
  const [before] = IDL.decode(counters, await query(canister, 'counters', empty));
  const updates = await run(seconds, workers, () => update(canister, 'increment', empty));
  const queries = await run(seconds, workers, () => query(canister, 'counters', empty));
  const server = await run(seconds, workers, () => update(canister, 'increment', empty, true));
  const [heap] = IDL.decode(counters, await query(canister, 'counters', empty));
  if (heap - before !== BigInt(updates.count + server.count)) {
    throw new Error(`the counter moved by ${heap - before} for ${updates.count + server.count} acknowledged updates`);
  }
  console.log(
    JSON.stringify({
      'gateway.update_calls_per_sec': Math.round(updates.perSecond * 10) / 10,
      'gateway.query_calls_per_sec': Math.round(queries.perSecond * 10) / 10,
      'gateway.p50_update_ms': Math.round(updates.p50 * 10) / 10,
      'gateway.p99_update_ms': Math.round(updates.p99 * 10) / 10,
      'gateway.p50_query_ms': Math.round(queries.p50 * 10) / 10,
      'gateway.p99_query_ms': Math.round(queries.p99 * 10) / 10,
      'gateway.server_update_calls_per_sec': Math.round(server.perSecond * 10) / 10,
      'gateway.server_p99_update_ms': Math.round(server.p99 * 10) / 10,
    }),
  );
} else if (mode === 'hammer') {
  const canister = Principal.fromText(rest[0]);
  const empty = IDL.encode([], []);
  // Each worker sends updates one after another; an update counts once its certified reply
  // arrived. Runs until the server is killed.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (;;) {
        try {
          const [heap] = IDL.decode(counters, await update(canister, 'increment', empty));
          appendFileSync(rest[1], `${heap}\n`);
        } catch {
          return;
        }
      }
    }),
  );
} else if (mode === 'count') {
  const [heap, stable] = IDL.decode(counters, await query(Principal.fromText(rest[0]), 'counters', IDL.encode([], [])));
  console.log(`${heap} ${stable}`);
} else if (mode === 'inspect') {
  try {
    await update(Principal.fromText(rest[0]), 'blocked_by_inspect', IDL.encode([], []));
  } catch (error) {
    const line = `${error.message}`.split('\n').find(l => /rejected the message/.test(l));
    if (!line) throw error;
    console.log(`refused before execution: ${line.trim()}`);
    process.exit(0);
  }
  throw new Error('canister_inspect_message accepted blocked_by_inspect');
} else {
  console.error('usage: see the header of load.mjs');
  process.exit(2);
}
