//! The platform most integration tests start from: the suite deployed, the agent wasm
//! uploaded to the factory, stories260K (NOVAQ q4a) published and active; with the calls a
//! user makes to subscribe, create agents and run them.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use novaq::format::Manifest;
use ohms_llm::generate::generate;
use ohms_llm::{Sampler, Tokenizer};
use ohms_types::{
    AgentCanisterRecord, AgentCanisterStatus, AgentWasmChunk, AgentWasmStatus, Capability,
    CreateAgentsArgs, CreatedAgents, Error, FactorySettings, GenerationParams, ModelId,
    ModelMetadata, Purchase, RunArgs, RunInfo, SubscribeArgs, Tier, UsageSummary,
};
use serde::de::DeserializeOwned;

use crate::{Suite, controller, user, wasm};

pub const BASIC_PRICE: u64 = 100_000_000;
pub const MODEL: &str = "stories260k-q4a";
pub const PYTHON_TEAM: &str = "create coding agents for Python development and testing";

pub struct Platform {
    pub suite: Suite,
    pub factory: Principal,
    pub economics: Principal,
    /// The model as uploaded: manifest bytes and shards.
    pub model: Option<(Vec<u8>, Vec<Vec<u8>>)>,
}

impl Platform {
    /// The suite with the agent wasm uploaded to the factory and stories260K (q4a, the
    /// SIMD kernel's mode) active.
    pub fn deploy() -> Option<Self> {
        let model = crate::stories260k("q4a", 64 << 10)?;
        Some(Self::with_model(MODEL, "q4a", model))
    }

    pub fn with_model(id: &str, mode: &str, model: (Vec<u8>, Vec<Vec<u8>>)) -> Self {
        let suite = Suite::deploy();
        let mut p = Self {
            factory: suite.id("agent_factory"),
            economics: suite.id("economics"),
            suite,
            model: None,
        };
        let status = p.upload_agent_wasm(&wasm("agent"));
        assert!(status.active_sha256.is_some(), "{status:?}");
        p.publish(id, mode, model);
        p
    }

    pub fn publish(&mut self, id: &str, mode: &str, model: (Vec<u8>, Vec<Vec<u8>>)) {
        let metadata = ModelMetadata {
            id: ModelId::parse(id, "id").unwrap(),
            name: format!("{id} ({mode})"),
            version: "1".into(),
            description: format!("{id}, NOVAQ {mode}"),
            capabilities: vec![Capability::Chat, Capability::Code, Capability::Storytelling],
            tags: vec![],
            min_tier: Tier::Basic,
        };
        self.suite
            .publish_model(controller(), metadata, model.0.clone(), &model.1);
        if self.model.is_none() {
            self.model = Some(model);
        }
    }

    pub fn upload_agent_wasm(&mut self, module: &[u8]) -> AgentWasmStatus {
        let sha256 = novaq::format::sha256_hex(module);
        let mut status = None;
        let piece = 1 << 20;
        for (i, part) in module.chunks(piece).enumerate() {
            let chunk = AgentWasmChunk {
                sha256: sha256.clone(),
                total_bytes: module.len() as u64,
                offset: (i * piece) as u64,
                bytes: part.to_vec(),
            };
            let reply: Result<AgentWasmStatus, Error> =
                self.factory_update(controller(), "upload_agent_wasm", chunk);
            status = Some(reply.expect("upload_agent_wasm"));
        }
        status.expect("at least one chunk")
    }

    pub fn factory_update<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let factory = self.factory;
        self.suite.update(factory, caller, method, (arg,))
    }

    pub fn factory_query<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let factory = self.factory;
        self.suite.query(factory, caller, method, (arg,))
    }

    /// Approves economics for the basic tier's price and subscribes for a month.
    pub fn subscribe(&mut self, who: Principal) {
        let ledger = self.suite.ledger;
        let approve = ApproveArgs {
            from_subaccount: None,
            spender: IcrcAccount {
                owner: self.economics,
                subaccount: None,
            },
            amount: Nat::from(BASIC_PRICE + crate::LEDGER_FEE_E8S),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let approved: Result<Nat, ApproveError> =
            self.suite.update(ledger, who, "icrc2_approve", (approve,));
        approved.expect("approve");
        let economics = self.economics;
        let purchase: Result<Purchase, Error> = self.suite.update(
            economics,
            who,
            "subscribe",
            (SubscribeArgs {
                tier: Tier::Basic,
                months: 1,
                auto_renew: false,
                method: None,
            },),
        );
        purchase.expect("subscribe");
    }

    pub fn create(
        &mut self,
        who: Principal,
        instructions: &str,
        count: Option<u32>,
    ) -> Result<CreatedAgents, Error> {
        self.factory_update(
            who,
            "create_agents",
            CreateAgentsArgs {
                instructions: instructions.into(),
                count,
                model: None,
            },
        )
    }

    /// One agent on `model` (the analysis's choice overridden).
    pub fn create_on(
        &mut self,
        who: Principal,
        instructions: &str,
        model: &str,
    ) -> Result<CreatedAgents, Error> {
        self.factory_update(
            who,
            "create_agents",
            CreateAgentsArgs {
                instructions: instructions.into(),
                count: Some(1),
                model: Some(ModelId::parse(model, "model").unwrap()),
            },
        )
    }

    pub fn usage(&mut self, who: Principal) -> UsageSummary {
        let economics = self.economics;
        let usage: Result<UsageSummary, Error> = self.suite.query(economics, who, "my_usage", ());
        usage.expect("my_usage")
    }

    pub fn run(
        &mut self,
        canister: Principal,
        who: Principal,
        args: RunArgs,
    ) -> Result<RunInfo, Error> {
        self.suite.update(canister, who, "run", (args,))
    }

    pub fn get_run(
        &mut self,
        canister: Principal,
        who: Principal,
        id: u64,
    ) -> Result<RunInfo, Error> {
        self.suite.query(canister, who, "get_run", (id,))
    }

    /// Lets timers and calls run until the run has ended and its usage is committed.
    pub fn finish(&mut self, canister: Principal, who: Principal, id: u64) -> RunInfo {
        for _ in 0..2_000 {
            let run = self.get_run(canister, who, id).expect("get_run");
            if run.status.is_final() && run.usage_committed {
                return run;
            }
            self.suite.env.tick();
        }
        panic!(
            "run {id} did not finish: {:?}",
            self.get_run(canister, who, id)
        );
    }

    pub fn agent_status(&mut self, canister: Principal, who: Principal) -> AgentCanisterStatus {
        let status: Result<AgentCanisterStatus, Error> =
            self.suite.query(canister, who, "agent_status", ());
        status.expect("agent_status")
    }

    pub fn settings(&mut self) -> FactorySettings {
        let settings: Result<FactorySettings, Error> =
            self.factory_query(controller(), "factory_settings", ());
        settings.unwrap()
    }

    pub fn set_settings(&mut self, settings: FactorySettings) {
        let set: Result<(), Error> =
            self.factory_update(controller(), "set_factory_settings", settings);
        set.expect("set_factory_settings");
    }

    pub fn record_of(&mut self, who: Principal) -> Option<AgentCanisterRecord> {
        let record: Result<Option<AgentCanisterRecord>, Error> =
            self.factory_query(who, "my_agent_canister", ());
        record.unwrap()
    }

    /// What the native forward pass generates for the same model, prompt, parameters and seed.
    pub fn native(
        &self,
        system: &str,
        prompt: &str,
        params: &GenerationParams,
        seed: u64,
    ) -> Vec<u32> {
        let (manifest, shards) = self.model.as_ref().expect("a model");
        let manifest = Manifest::from_cbor(manifest).unwrap();
        let mut model =
            ohms_llm::load::load_novaq(&manifest, shards.iter().map(Vec::as_slice).collect())
                .unwrap();
        let tokenizer = Tokenizer::from_spec(manifest.tokenizer.as_ref().unwrap()).unwrap();
        let tokens = tokenizer.encode_instruction(system, prompt);
        let stop = tokenizer.stop_tokens();
        let mut sampler = Sampler::for_params(params.temperature, params.top_p, seed);
        generate(
            &mut model,
            &tokens,
            &mut sampler,
            params.max_tokens as usize,
            &stop,
        )
        .unwrap()
    }
}

pub fn alice() -> Principal {
    user("alice")
}

pub fn bob() -> Principal {
    user("bob")
}
