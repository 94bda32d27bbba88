//! Agent canisters: created on a user's first `create_agents` through the management canister
//! (cycles from the factory), the agent wasm installed in chunks, registered with the model
//! repository (read access) and with economics (usage for its owner). Each step is recorded
//! before the next starts, so a failure half-way leaves a recorded canister that the next
//! call completes — never an orphan.

use candid::{Encode, Principal};
use ic_cdk_management_canister::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, ChunkHash, ClearChunkStoreArgs,
    CreateCanisterArgs, InstallChunkedCodeArgs, UploadChunkArgs,
};
use ohms_types::{
    AgentCanisterRecord, AgentInitArgs, AgentInstallArgs, Error, UpgradeOutcome, UpgradeReport,
};
use sha2::{Digest, Sha256};

use crate::state::{mutate_state, read_state};

/// Bytes per `upload_chunk` (the management canister's limit is 1 MiB).
const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

fn failed(method: &str, err: impl ToString) -> Error {
    Error::CallFailed {
        canister: Principal::management_canister().to_text(),
        method: method.into(),
        reason: err.to_string(),
    }
}

/// The caller's ready agent canister, created, installed and registered as far as needed.
/// Returns it and whether this call created it.
pub async fn ensure(owner: Principal, now: u64) -> Result<(AgentCanisterRecord, bool), Error> {
    let mut created = false;
    let mut record = match read_state(|s| s.canister_of(&owner)) {
        Some(record) => record,
        None => {
            let cycles = read_state(|s| s.config().settings.agent_initial_cycles);
            let factory = ic_cdk::api::canister_self();
            let args = CreateCanisterArgs {
                settings: Some(CanisterSettings {
                    controllers: Some(vec![factory]),
                    ..CanisterSettings::default()
                }),
            };
            let canister =
                ic_cdk_management_canister::create_canister_with_extra_cycles(&args, cycles)
                    .await
                    .map_err(|err| failed("create_canister", err))?
                    .canister_id;
            let record = AgentCanisterRecord {
                owner,
                canister,
                ready: false,
                agents: 0,
                wasm_sha256: None,
                created_at_nanos: now,
                topped_up_cycles: 0,
                cycles: Some(cycles),
            };
            mutate_state(|s| s.put_canister(record.clone()));
            created = true;
            record
        }
    };
    if !record.ready {
        if record.wasm_sha256.is_none() {
            let init = AgentInstallArgs::Init(AgentInitArgs {
                admins: vec![],
                siblings: ohms_ops::registered_siblings(),
                owner: Some(owner),
                instructions_per_message: Some(read_state(|s| {
                    s.config().settings.agent_instructions_per_message
                })),
            });
            let arg = Encode!(&init).expect("install argument encodes");
            let sha = install(record.canister, CanisterInstallMode::Install, arg).await?;
            record.wasm_sha256 = Some(sha.clone());
            update_record(owner, |r| r.wasm_sha256 = Some(sha));
        }
        let repo = ohms_ops::calls::sibling("model_repo")?;
        ohms_ops::calls::call::<_, ()>(repo, "register_agent_canister", (record.canister,)).await?;
        let economics = ohms_ops::calls::sibling("economics")?;
        ohms_ops::calls::call::<_, ()>(
            economics,
            "register_agent_canister",
            (record.canister, owner),
        )
        .await?;
        record.ready = true;
        update_record(owner, |r| r.ready = true);
    }
    Ok((record, created))
}

/// Changes fields of the stored record (never writes back a copy taken before an await, which
/// would undo what other calls changed meanwhile).
pub fn update_record(owner: Principal, f: impl FnOnce(&mut AgentCanisterRecord)) {
    mutate_state(|s| {
        if let Some(mut record) = s.canister_of(&owner) {
            f(&mut record);
            s.put_canister(record);
        }
    });
}

/// Installs (or upgrades) the active agent wasm into `canister` through its chunk store.
/// Returns the module's sha256.
async fn install(
    canister: Principal,
    mode: CanisterInstallMode,
    arg: Vec<u8>,
) -> Result<String, Error> {
    let (meta, wasm) = read_state(|s| s.active_wasm())
        .ok_or_else(|| Error::invalid_state("no agent wasm has been uploaded"))?;
    let mut hashes = Vec::new();
    for chunk in wasm.chunks(UPLOAD_CHUNK_BYTES) {
        let hash = ic_cdk_management_canister::upload_chunk(&UploadChunkArgs {
            canister_id: canister,
            chunk: chunk.to_vec(),
        })
        .await
        .map_err(|err| failed("upload_chunk", err))?;
        hashes.push(ChunkHash { hash: hash.hash });
    }
    let installed = ic_cdk_management_canister::install_chunked_code(&InstallChunkedCodeArgs {
        mode,
        target_canister: canister,
        store_canister: None,
        chunk_hashes_list: hashes,
        wasm_module_hash: Sha256::digest(&wasm).to_vec(),
        arg,
    })
    .await
    .map_err(|err| failed("install_chunked_code", err));
    // The chunks take the agent canister's memory, installed or not.
    let _ = ic_cdk_management_canister::clear_chunk_store(&ClearChunkStoreArgs {
        canister_id: canister,
    })
    .await;
    installed.map(|()| meta.sha256)
}

/// Stops the canister (its calls in flight finish first), upgrades it, starts it again (also
/// when the upgrade failed), and gives it the current per-message budget.
async fn upgrade(record: &AgentCanisterRecord) -> Result<String, Error> {
    let id = CanisterIdRecord {
        canister_id: record.canister,
    };
    ic_cdk_management_canister::stop_canister(&id)
        .await
        .map_err(|err| failed("stop_canister", err))?;
    let arg = Encode!(&Some(AgentInstallArgs::Upgrade(None))).expect("upgrade argument encodes");
    let result = install(record.canister, CanisterInstallMode::Upgrade(None), arg).await;
    ic_cdk_management_canister::start_canister(&id)
        .await
        .map_err(|err| failed("start_canister", err))?;
    let sha = result?;
    let budget = read_state(|s| s.config().settings.agent_instructions_per_message);
    ohms_ops::calls::call::<_, ()>(record.canister, "set_instructions_per_message", (budget,))
        .await?;
    Ok(sha)
}

/// Upgrades up to `limit` agent canisters not yet on the active wasm, one after the other;
/// calling again continues with the rest (a failed one is tried again then).
pub async fn upgrade_all(limit: u32) -> Result<UpgradeReport, Error> {
    let active = read_state(|s| s.config().active_wasm)
        .ok_or_else(|| Error::invalid_state("no agent wasm has been uploaded"))?;
    let stale = || -> Vec<AgentCanisterRecord> {
        read_state(|s| {
            s.canisters
                .iter()
                .map(|e| e.value().0)
                .filter(|r| {
                    r.wasm_sha256.is_some() && r.wasm_sha256.as_ref() != Some(&active.sha256)
                })
                .collect()
        })
    };
    let mut upgraded = Vec::new();
    for record in stale().into_iter().take(limit as usize) {
        let result = upgrade(&record).await;
        if let Ok(sha) = &result {
            update_record(record.owner, |r| r.wasm_sha256 = Some(sha.clone()));
        }
        upgraded.push(UpgradeOutcome {
            canister: record.canister,
            result: result.map(|_| ()).map_err(|err| err.to_string()),
        });
    }
    Ok(UpgradeReport {
        upgraded,
        remaining: stale().len() as u64,
    })
}
