// The main job's last step: the network the run built, served over the IC HTTP interface, read
// by the JS agent as a dapp would (root key from /api/v2/status, every certificate and query
// signature verified).
//
//   node tests/http/show.mjs URL CANISTER_IDS_JSON
import { readFileSync } from 'node:fs';
import { Actor, HttpAgent } from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';

const [url, idsFile] = process.argv.slice(2);
const ids = JSON.parse(readFileSync(idsFile, 'utf8'));
const identity = Ed25519KeyIdentity.generate();
const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
const status = await agent.status();
console.log(`${url}: ${status.replica_health_status}, root key ${Buffer.from(status.root_key).toString('hex').slice(0, 24)}… (${status.root_key.length} bytes)`);
console.log(`caller: a fresh Ed25519 identity, ${identity.getPrincipal().toText()}`);

const repo = Actor.createActor(
  ({ IDL }) => {
    const Page = IDL.Record({ start: IDL.Nat64, limit: IDL.Nat32 });
    const Model = IDL.Record({ id: IDL.Text, name: IDL.Text, mode: IDL.Text, compressed_bytes: IDL.Nat64 });
    // Every filter left open (an empty variant is a subtype of any variant).
    const Filter = IDL.Record({
      state: IDL.Opt(IDL.Variant({})),
      capabilities: IDL.Vec(IDL.Variant({})),
      tag: IDL.Opt(IDL.Text),
      max_tier: IDL.Opt(IDL.Variant({})),
    });
    return IDL.Service({
      repo_stats: IDL.Func([], [IDL.Record({ models_active: IDL.Nat64, bytes_used: IDL.Nat64 })], ['query']),
      list_models: IDL.Func(
        [Filter, Page],
        [IDL.Variant({ Ok: IDL.Record({ items: IDL.Vec(Model), total: IDL.Nat64 }), Err: IDL.Reserved })],
        ['query'],
      ),
    });
  },
  { agent, canisterId: ids.model_repo },
);
const stats = await repo.repo_stats();
console.log(`model_repo ${ids.model_repo} (signed query): ${stats.models_active} active models, ${stats.bytes_used} bytes used`);
const listed = await repo.list_models(
  { state: [], capabilities: [], tag: [], max_tier: [] },
  { start: 0n, limit: 10 },
);
if ('Err' in listed) throw new Error('list_models refused');
for (const model of listed.Ok.items) {
  console.log(`  ${model.id}  ${model.name} (${model.mode}), ${model.compressed_bytes} bytes`);
}

const coordinator = Actor.createActor(
  ({ IDL }) =>
    IDL.Service({
      mark_alerts_read: IDL.Func([IDL.Vec(IDL.Nat64)], [IDL.Variant({ Ok: IDL.Nat32, Err: IDL.Reserved })], []),
    }),
  { agent, canisterId: ids.coordinator },
);
const marked = await coordinator.mark_alerts_read([]);
console.log(`coordinator ${ids.coordinator} (certified update mark_alerts_read): ${JSON.stringify(marked)}`);
