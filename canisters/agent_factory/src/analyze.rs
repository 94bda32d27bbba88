//! `analyze_instructions`: a deterministic, explainable reading of a user's instructions into
//! agent roles, an agent count, a token budget and (with the repository's catalogue) models.
//!
//! Pure logic: no canister calls, no clock, no randomness. The same text (and catalogue) always
//! gives the same analysis, and every part of it says which words led to it.
//!
//! # Rules
//!
//! Capabilities are recognised by [`crate::taxonomy`]. Roles follow from them in this fixed
//! order (each at most once):
//!
//! | Role | When |
//! |---|---|
//! | Python / Rust / JavaScript Developer | a *coding request* naming the language |
//! | Software Developer | a coding request naming none of those languages |
//! | Code Reviewer | every coding request, and `code review` |
//! | Test Generator | `testing` |
//! | Debugging Specialist | `debugging` |
//! | Technical Writer | `documentation` |
//! | Data Analyst | `data analysis` |
//! | Researcher | `research` |
//! | Planner | `planning` |
//! | Summarizer | `summarization` |
//! | Translator | `translation` |
//! | Writer | `writing` |
//! | Storyteller | `storytelling` |
//! | Math Tutor | `math` with `teaching` |
//! | Math Solver | `math` without `teaching` |
//! | Tutor | `teaching` without `math` |
//! | Assistant | `chat`, or nothing recognised at all |
//!
//! A *coding request* is `coding` found, or a language found without any of the code tasks that
//! a language merely qualifies (testing, code review, debugging, documentation, data analysis,
//! teaching): "unit tests for my Rust crate" asks for a Test Generator for Rust, not a Rust
//! Developer. Roles working on code take the languages found into their model capabilities and
//! system prompt.
//!
//! The agent count is the count the text asks for ("create 5 agents", "three agents",
//! "a team of four": see [`requested_count`]) or else one agent per role, at most
//! [`MAX_AGENTS_PER_REQUEST`]. More agents than roles repeat the roles in order
//! ("Python Developer 2"); fewer keep the first roles.

use ohms_types::{
    Capability, Error, FoundCapability, InstructionAnalysis, ModelId, ModelState, ModelSummary,
    RolePlan, SuggestedModel,
};

use crate::taxonomy::{self, BOUNDARY, Found, NATURAL_LANGUAGES, TAXONOMY, idx};

/// Longest instructions accepted, in bytes (UTF-8).
pub const MAX_INSTRUCTION_BYTES: usize = 4096;
/// Most agents one request creates.
pub const MAX_AGENTS_PER_REQUEST: u32 = 10;
/// Most models [`suggest_models`] lists.
pub const MAX_SUGGESTED_MODELS: usize = 5;

const FIELD: &str = "instructions";

/// Separates a role's reason from the reason of its model (see [`suggest_models`]).
const MODEL_REASON_MARKER: &str = " — model: ";

/// The roles, in the order they are planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    PythonDeveloper,
    RustDeveloper,
    JavaScriptDeveloper,
    SoftwareDeveloper,
    CodeReviewer,
    TestGenerator,
    DebuggingSpecialist,
    TechnicalWriter,
    DataAnalyst,
    Researcher,
    Planner,
    Summarizer,
    Translator,
    Writer,
    Storyteller,
    MathTutor,
    MathSolver,
    Tutor,
    Assistant,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::PythonDeveloper => "Python Developer",
            Self::RustDeveloper => "Rust Developer",
            Self::JavaScriptDeveloper => "JavaScript Developer",
            Self::SoftwareDeveloper => "Software Developer",
            Self::CodeReviewer => "Code Reviewer",
            Self::TestGenerator => "Test Generator",
            Self::DebuggingSpecialist => "Debugging Specialist",
            Self::TechnicalWriter => "Technical Writer",
            Self::DataAnalyst => "Data Analyst",
            Self::Researcher => "Researcher",
            Self::Planner => "Planner",
            Self::Summarizer => "Summarizer",
            Self::Translator => "Translator",
            Self::Writer => "Writer",
            Self::Storyteller => "Storyteller",
            Self::MathTutor => "Math Tutor",
            Self::MathSolver => "Math Solver",
            Self::Tutor => "Tutor",
            Self::Assistant => "Assistant",
        }
    }

    /// Estimated tokens of one answer of the role — what the token budget adds up:
    ///
    /// - developers 1,500: a code file or a few functions with a short explanation;
    /// - Test Generator, Technical Writer, Writer 1,200: a test module, a README section or an
    ///   article-length text;
    /// - Debugging Specialist, Data Analyst, Researcher, Storyteller 1,000: a diagnosis with a
    ///   fix, a findings report, a short story;
    /// - Code Reviewer, Translator, Math Tutor, Tutor 800: review comments, a translated page,
    ///   an explanation step by step;
    /// - Planner 700: a plan of steps and milestones;
    /// - Math Solver 600: a worked solution;
    /// - Assistant 500: a conversational answer;
    /// - Summarizer 400: a summary of key points.
    pub fn tokens_per_answer(self) -> u32 {
        match self {
            Self::PythonDeveloper
            | Self::RustDeveloper
            | Self::JavaScriptDeveloper
            | Self::SoftwareDeveloper => 1_500,
            Self::TestGenerator | Self::TechnicalWriter | Self::Writer => 1_200,
            Self::DebuggingSpecialist
            | Self::DataAnalyst
            | Self::Researcher
            | Self::Storyteller => 1_000,
            Self::CodeReviewer | Self::Translator | Self::MathTutor | Self::Tutor => 800,
            Self::Planner => 700,
            Self::MathSolver => 600,
            Self::Assistant => 500,
            Self::Summarizer => 400,
        }
    }

    /// The model capabilities the role needs, most important first (languages found are added
    /// for the roles that [work on code](Self::works_on_code)).
    pub fn base_capabilities(self) -> &'static [Capability] {
        use Capability as C;
        match self {
            Self::PythonDeveloper => &[C::Python, C::Code],
            Self::RustDeveloper => &[C::Rust, C::Code],
            Self::JavaScriptDeveloper => &[C::JavaScript, C::Code],
            Self::SoftwareDeveloper => &[C::Code],
            Self::CodeReviewer => &[C::CodeReview, C::Code],
            Self::TestGenerator => &[C::Testing, C::Code],
            Self::DebuggingSpecialist => &[C::Code, C::Reasoning],
            Self::TechnicalWriter => &[C::Writing, C::Code],
            Self::DataAnalyst => &[C::Reasoning, C::Math],
            Self::Researcher => &[C::Reasoning, C::Summarize],
            Self::Planner => &[C::Reasoning],
            Self::Summarizer => &[C::Summarize],
            Self::Translator => &[C::Translate],
            Self::Writer => &[C::Writing],
            Self::Storyteller => &[C::Storytelling, C::Writing],
            Self::MathTutor => &[C::Math, C::Reasoning, C::Chat],
            Self::MathSolver => &[C::Math, C::Reasoning],
            Self::Tutor => &[C::Chat, C::Reasoning],
            Self::Assistant => &[C::Chat],
        }
    }

    /// Roles that take the languages found into their capabilities and prompt.
    fn works_on_code(self) -> bool {
        matches!(
            self,
            Self::SoftwareDeveloper
                | Self::CodeReviewer
                | Self::TestGenerator
                | Self::DebuggingSpecialist
                | Self::TechnicalWriter
                | Self::DataAnalyst
                | Self::Tutor
        )
    }
}

/// Code tasks a language only qualifies: with one of them, a language alone is no coding
/// request.
const LANGUAGE_QUALIFIED: &[usize] = &[
    idx::TESTING,
    idx::CODE_REVIEW,
    idx::DEBUGGING,
    idx::DOCUMENTATION,
    idx::DATA_ANALYSIS,
    idx::TEACHING,
];

/// Number words recognised in counts (digits are read as numbers).
const NUMBER_WORDS: &[(&str, u32)] = &[
    ("one", 1),
    ("single", 1),
    ("two", 2),
    ("couple", 2),
    ("pair", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("dozen", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
    ("twenty", 20),
];

/// Nouns a count applies to.
const AGENT_NOUNS: &[&str] = &[
    "agent",
    "agents",
    "bot",
    "bots",
    "assistant",
    "assistants",
    "helper",
    "helpers",
    "worker",
    "workers",
];

/// "a team of four": groups whose size is a count.
const GROUP_NOUNS: &[&str] = &["team", "group", "squad", "crew"];

/// Words allowed between a number and its noun ("3 python coding agents").
const MAX_WORDS_BETWEEN: usize = 3;

fn number(word: &str) -> Option<u32> {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        // Saturating: "99999999999 agents" is a count far above the limit, not an error.
        let n = word
            .parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
        return (n > 0).then_some(n);
    }
    NUMBER_WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, n)| *n)
}

/// The agent count the text asks for, with the words that say so: a number (digits, or a word
/// from one to twenty) followed within [`MAX_WORDS_BETWEEN`] words by an agent noun
/// (`agents`, `bots`, `assistants`, `helpers`, `workers`), or after "team of" / "group of".
/// The first such count wins; zero is no count.
pub fn requested_count(words: &[String]) -> Option<(u32, String)> {
    for (i, word) in words.iter().enumerate() {
        let Some(n) = number(word) else { continue };
        for j in i + 1..words.len().min(i + 2 + MAX_WORDS_BETWEEN) {
            if words[j] == BOUNDARY || number(&words[j]).is_some() {
                break;
            }
            if AGENT_NOUNS.contains(&words[j].as_str()) {
                return Some((n, words[i..=j].join(" ")));
            }
        }
        if i >= 2 && words[i - 1] == "of" && GROUP_NOUNS.contains(&words[i - 2].as_str()) {
            return Some((n, words[i - 2..=i].join(" ")));
        }
    }
    None
}

/// Analyses `text` (see the module documentation). `suggested_models` is left empty: fill it
/// with [`suggest_models`].
///
/// Errors: `InvalidArgument { field: "instructions" }` when `text` is longer than
/// [`MAX_INSTRUCTION_BYTES`] (checked first, before any other work) or holds only whitespace.
pub fn analyze(text: &str) -> Result<InstructionAnalysis, Error> {
    if text.len() > MAX_INSTRUCTION_BYTES {
        return Err(Error::invalid_argument(
            FIELD,
            format!(
                "at most {MAX_INSTRUCTION_BYTES} bytes, got {} bytes",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(Error::invalid_argument(
            FIELD,
            "must not be empty: describe what the agents should do",
        ));
    }
    let words = taxonomy::tokenize(text);
    let found = taxonomy::recognize(&words);
    let focus = Focus::new(&found, &words);
    let planned = plan(&found);
    let requested = requested_count(&words);

    // Agents: one per role unless a count was asked for; at most the limit.
    let wanted = requested.as_ref().map_or(planned.len() as u32, |(n, _)| *n);
    let agent_count = wanted.min(MAX_AGENTS_PER_REQUEST);
    let roles: Vec<RolePlan> = (0..agent_count as usize)
        .map(|i| {
            let (role, reason) = &planned[i % planned.len()];
            let round = i / planned.len() + 1;
            let name = if round == 1 {
                role.name().to_string()
            } else {
                format!("{} {round}", role.name())
            };
            let mut reason = reason.clone();
            if round > 1 {
                reason.push_str(&format!(
                    "; repeated because more agents were asked for than there are roles (agent {} of {agent_count})",
                    i + 1
                ));
            }
            RolePlan {
                role: name,
                system_prompt: focus.prompt(*role),
                capabilities: focus.capabilities(*role),
                tokens_per_answer: role.tokens_per_answer(),
                model: None,
                reason,
            }
        })
        .collect();

    let (token_budget, token_budget_reason) = token_budget(&roles, &planned);
    let explanation = explain(
        &found,
        &planned,
        requested.as_ref(),
        agent_count,
        &roles,
        token_budget,
    );
    Ok(InstructionAnalysis {
        capabilities: found
            .iter()
            .map(|f| FoundCapability {
                name: f.entry().name.to_string(),
                matched: f.matched.iter().map(|m| m.to_string()).collect(),
                model_capabilities: f.entry().model_capabilities.to_vec(),
            })
            .collect(),
        roles,
        agent_count,
        requested_count: requested.map(|(n, _)| n),
        token_budget,
        token_budget_reason,
        suggested_models: Vec::new(),
        explanation,
    })
}

/// `name ("word", "other word")`.
fn quote(found: &Found) -> String {
    let words: Vec<String> = found.matched.iter().map(|m| format!("\"{m}\"")).collect();
    format!("{} ({})", found.entry().name, words.join(", "))
}

/// `a`, `a and b`, `a, b and c`.
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// `1,500`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn find(found: &[Found], entry: usize) -> Option<&Found> {
    found.iter().find(|f| f.entry == entry)
}

/// The roles for the capabilities found, in [`Role`] order, each with its reason.
fn plan(found: &[Found]) -> Vec<(Role, String)> {
    let get = |entry| find(found, entry);
    let languages: Vec<(&Found, Role)> = [
        (idx::PYTHON, Role::PythonDeveloper),
        (idx::RUST, Role::RustDeveloper),
        (idx::JAVASCRIPT, Role::JavaScriptDeveloper),
    ]
    .into_iter()
    .filter_map(|(entry, role)| get(entry).map(|f| (f, role)))
    .collect();
    let for_languages = if languages.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = languages.iter().map(|(f, _)| quote(f)).collect();
        format!(", for {}", and_list(&quoted))
    };
    let coding = get(idx::CODING);
    let qualified: Vec<&Found> = LANGUAGE_QUALIFIED.iter().filter_map(|e| get(*e)).collect();
    let coding_request = coding.is_some() || (!languages.is_empty() && qualified.is_empty());

    let mut roles = Vec::new();
    if coding_request {
        if let (true, Some(coding)) = (languages.is_empty(), coding) {
            roles.push((
                Role::SoftwareDeveloper,
                format!(
                    "{}, with none of Python, Rust or JavaScript named",
                    quote(coding)
                ),
            ));
        }
        for (language, role) in &languages {
            let reason = match coding {
                Some(coding) => format!("{} with {}", quote(language), quote(coding)),
                None => format!(
                    "{} named without another code task: a coding request",
                    quote(language)
                ),
            };
            roles.push((*role, reason));
        }
    }
    if let Some(review) = get(idx::CODE_REVIEW) {
        roles.push((
            Role::CodeReviewer,
            format!("{}{for_languages}", quote(review)),
        ));
    } else if coding_request {
        let trigger = coding.map_or_else(
            || and_list(&languages.iter().map(|(f, _)| quote(f)).collect::<Vec<_>>()),
            quote,
        );
        roles.push((
            Role::CodeReviewer,
            format!("every coding request gets a reviewer: {trigger}"),
        ));
    }
    let simple = [
        (idx::TESTING, Role::TestGenerator),
        (idx::DEBUGGING, Role::DebuggingSpecialist),
        (idx::DOCUMENTATION, Role::TechnicalWriter),
        (idx::DATA_ANALYSIS, Role::DataAnalyst),
        (idx::RESEARCH, Role::Researcher),
        (idx::PLANNING, Role::Planner),
        (idx::SUMMARIZATION, Role::Summarizer),
        (idx::TRANSLATION, Role::Translator),
        (idx::WRITING, Role::Writer),
        (idx::STORYTELLING, Role::Storyteller),
    ];
    for (entry, role) in simple {
        if let Some(f) = get(entry) {
            let suffix = if role.works_on_code() {
                for_languages.as_str()
            } else {
                ""
            };
            roles.push((role, format!("{}{suffix}", quote(f))));
        }
    }
    match (get(idx::MATH), get(idx::TEACHING)) {
        (Some(math), Some(teaching)) => roles.push((
            Role::MathTutor,
            format!("{} with {}", quote(math), quote(teaching)),
        )),
        (Some(math), None) => roles.push((
            Role::MathSolver,
            format!("{}, with no teaching words", quote(math)),
        )),
        (None, Some(teaching)) => {
            roles.push((Role::Tutor, format!("{}{for_languages}", quote(teaching))))
        }
        (None, None) => {}
    }
    if let Some(chat) = get(idx::CHAT) {
        roles.push((Role::Assistant, quote(chat)));
    }
    if roles.is_empty() {
        let reason = if found.is_empty() {
            "no capability recognized: a general assistant".to_string()
        } else {
            let quoted: Vec<String> = found.iter().map(quote).collect();
            format!(
                "{} alone lead to no role: a general assistant",
                and_list(&quoted)
            )
        };
        roles.push((Role::Assistant, reason));
    }
    roles
}

/// What the user said the work is about, for system prompts and capabilities.
struct Focus {
    /// Python, Rust, JavaScript/TypeScript, then other languages named (Java, Go…).
    languages: Vec<String>,
    /// Model capabilities of the languages found.
    language_capabilities: Vec<Capability>,
    /// Per taxonomy entry, the focus phrases matched.
    topics: Vec<Vec<&'static str>>,
    /// Natural languages named, for a translator.
    natural_languages: Vec<&'static str>,
}

impl Focus {
    fn new(found: &[Found], words: &[String]) -> Self {
        let mut topics = vec![Vec::new(); TAXONOMY.len()];
        for f in found {
            topics[f.entry] = f.topics();
        }
        let mut languages = Vec::new();
        let mut language_capabilities = Vec::new();
        if find(found, idx::PYTHON).is_some() {
            languages.push("Python".to_string());
            language_capabilities.push(Capability::Python);
        }
        if find(found, idx::RUST).is_some() {
            languages.push("Rust".to_string());
            language_capabilities.push(Capability::Rust);
        }
        if let Some(js) = find(found, idx::JAVASCRIPT) {
            languages.push(javascript_name(js).to_string());
            language_capabilities.push(Capability::JavaScript);
        }
        for topic in &topics[idx::CODING] {
            languages.push(display_language(topic));
        }
        let mut natural_languages = Vec::new();
        for word in words {
            if let Some((_, name)) = NATURAL_LANGUAGES.iter().find(|(w, _)| w == word)
                && !natural_languages.contains(name)
            {
                natural_languages.push(*name);
            }
        }
        Self {
            languages,
            language_capabilities,
            topics,
            natural_languages,
        }
    }

    fn capabilities(&self, role: Role) -> Vec<Capability> {
        let mut capabilities = role.base_capabilities().to_vec();
        if role.works_on_code() {
            for c in &self.language_capabilities {
                if !capabilities.contains(c) {
                    capabilities.push(*c);
                }
            }
        }
        capabilities
    }

    /// ` (using django and pandas)` from an entry's topics.
    fn using(&self, entry: usize) -> String {
        match self.topics[entry].as_slice() {
            [] => String::new(),
            topics => format!(" (using {})", and_list(topics)),
        }
    }

    /// ` Focus on algebra and equations.` from an entry's topics.
    fn focus_on(&self, entry: usize) -> String {
        match self.topics[entry].as_slice() {
            [] => String::new(),
            topics => format!(" Focus on {}.", and_list(topics)),
        }
    }

    /// `Python and TypeScript code` or `code`.
    fn code(&self) -> String {
        if self.languages.is_empty() {
            "code".to_string()
        } else {
            format!("{} code", and_list(&self.languages))
        }
    }

    fn prompt(&self, role: Role) -> String {
        let code = self.code();
        match role {
            Role::PythonDeveloper => format!(
                "You are a Python developer. Write clean, idiomatic, working Python code{} for the user's task, and briefly explain your design choices.",
                self.using(idx::PYTHON)
            ),
            Role::RustDeveloper => format!(
                "You are a Rust developer. Write safe, idiomatic Rust{} that compiles, handles errors with Result, and briefly explain your design choices.",
                self.using(idx::RUST)
            ),
            Role::JavaScriptDeveloper => {
                let name = self
                    .languages
                    .iter()
                    .find(|l| l.contains("Script"))
                    .map_or("JavaScript", String::as_str);
                format!(
                    "You are a {name} developer. Write clean, modern {name} code{} for the user's task, and briefly explain your design choices.",
                    self.using(idx::JAVASCRIPT)
                )
            }
            Role::SoftwareDeveloper => {
                let language = if self.languages.is_empty() {
                    "in the language the user asks for".to_string()
                } else {
                    format!("in {}", and_list(&self.languages))
                };
                format!(
                    "You are a software developer. Write clean, working code {language} for the user's task, and briefly explain your design choices."
                )
            }
            Role::CodeReviewer => format!(
                "You are a code reviewer for {code}. Point out bugs, unclear code, security problems and missing tests in the code you are given, and suggest concrete fixes."
            ),
            Role::TestGenerator => format!(
                "You are a test engineer. Write thorough, runnable unit tests{} for {code}, covering edge cases and failure paths.",
                self.using(idx::TESTING)
            ),
            Role::DebuggingSpecialist => format!(
                "You are a debugging specialist for {code}. Find the root cause of the bugs and errors the user reports, explain it, and propose a minimal fix."
            ),
            Role::TechnicalWriter => format!(
                "You are a technical writer. Write clear, accurate documentation with examples for {code}, for the user's audience.{}",
                self.focus_on(idx::DOCUMENTATION)
            ),
            Role::DataAnalyst => {
                let with = if self.languages.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", and_list(&self.languages))
                };
                format!(
                    "You are a data analyst. Analyse the user's data{with}, state your method and assumptions, and report findings with the numbers that support them.{}",
                    self.focus_on(idx::DATA_ANALYSIS)
                )
            }
            Role::Researcher => format!(
                "You are a researcher. Investigate the user's question, compare sources, separate facts from opinions, and report findings with their sources.{}",
                self.focus_on(idx::RESEARCH)
            ),
            Role::Planner => format!(
                "You are a planner. Break the user's goal into ordered steps with milestones, dependencies and risks, and keep the plan realistic.{}",
                self.focus_on(idx::PLANNING)
            ),
            Role::Summarizer => format!(
                "You are a summarizer. Condense the text you are given into its key points, faithfully and concisely, adding nothing.{}",
                self.focus_on(idx::SUMMARIZATION)
            ),
            Role::Translator => {
                let between = match self.natural_languages.as_slice() {
                    [] => "between the languages the user names".to_string(),
                    [one] => format!("to or from {one}"),
                    several => format!("between {}", and_list(several)),
                };
                format!(
                    "You are a translator. Translate the text you are given {between} accurately, keeping its meaning, tone and formatting."
                )
            }
            Role::Writer => format!(
                "You are a writer. Write clear, engaging, well-structured prose in the style the user asks for.{}",
                self.focus_on(idx::WRITING)
            ),
            Role::Storyteller => format!(
                "You are a storyteller. Write short, vivid, coherent stories with a clear beginning, middle and end.{}",
                self.focus_on(idx::STORYTELLING)
            ),
            Role::MathTutor => format!(
                "You are a patient math tutor. Explain step by step so the student understands the method, and check their reasoning kindly.{}",
                self.focus_on(idx::MATH)
            ),
            Role::MathSolver => format!(
                "You are a math solver. Solve the problems step by step, show your working, and state the final answer clearly.{}",
                self.focus_on(idx::MATH)
            ),
            Role::Tutor => {
                let subject = if self.languages.is_empty() {
                    String::new()
                } else {
                    format!(" of {}", and_list(&self.languages))
                };
                format!(
                    "You are a patient tutor{subject}. Explain concepts step by step with examples, and check the learner's understanding."
                )
            }
            Role::Assistant => "You are a helpful general assistant. Answer clearly and concisely, and ask a question back when the request is ambiguous.".to_string(),
        }
    }
}

/// `TypeScript`, `JavaScript/TypeScript` or `JavaScript`, from the words that matched.
fn javascript_name(js: &Found) -> &'static str {
    let has = |terms: &[&str]| js.matched.iter().any(|m| terms.contains(m));
    let typescript = has(&["typescript", "ts", "tsx"]);
    let javascript = has(&["javascript", "js", "ecmascript", "es6", "jsx"]);
    match (javascript, typescript) {
        (true, true) => "JavaScript/TypeScript",
        (false, true) => "TypeScript",
        _ => "JavaScript",
    }
}

/// The name of a language among the coding topics.
fn display_language(topic: &str) -> String {
    match topic {
        "golang" => "Go".to_string(),
        "csharp" => "C#".to_string(),
        "php" => "PHP".to_string(),
        "html" => "HTML".to_string(),
        "css" => "CSS".to_string(),
        other => {
            let mut chars = other.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
    }
}

/// Tokens for one answer from every agent, and how they add up.
fn token_budget(roles: &[RolePlan], planned: &[(Role, String)]) -> (u64, String) {
    let total: u64 = roles.iter().map(|r| u64::from(r.tokens_per_answer)).sum();
    let mut parts = Vec::new();
    for (role, _) in planned {
        let agents = roles
            .iter()
            .filter(|r| r.role == role.name() || r.role.starts_with(&format!("{} ", role.name())))
            .count();
        match agents {
            0 => {}
            1 => parts.push(format!(
                "{} {}",
                role.name(),
                thousands(role.tokens_per_answer().into())
            )),
            n => parts.push(format!(
                "{n} × {} {}",
                role.name(),
                thousands(role.tokens_per_answer().into())
            )),
        }
    }
    let from = match roles.len() {
        1 => "the one agent".to_string(),
        n => format!("each of the {n} agents"),
    };
    let reason = format!(
        "{} tokens per answer = {} tokens for one answer from {from}",
        parts.join(" + "),
        thousands(total),
    );
    (total, reason)
}

fn explain(
    found: &[Found],
    planned: &[(Role, String)],
    requested: Option<&(u32, String)>,
    agent_count: u32,
    roles: &[RolePlan],
    token_budget: u64,
) -> String {
    let mut sentences = Vec::new();
    if found.is_empty() {
        sentences
            .push("No capability recognized, so one general Assistant is planned.".to_string());
    } else {
        let quoted: Vec<String> = found.iter().map(quote).collect();
        sentences.push(format!("Recognized {}.", and_list(&quoted)));
    }
    let names: Vec<&str> = planned.iter().map(|(r, _)| r.name()).collect();
    sentences.push(format!(
        "Role{}: {}.",
        if names.len() == 1 { "" } else { "s" },
        and_list(&names)
    ));
    let roles_n = planned.len() as u32;
    let kept: Vec<&str> = names.iter().take(agent_count as usize).copied().collect();
    let dropped: Vec<&str> = names.iter().skip(agent_count as usize).copied().collect();
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    match requested {
        None if roles_n <= MAX_AGENTS_PER_REQUEST => sentences.push(format!(
            "{agent_count} agent{}, one per role.",
            plural(agent_count)
        )),
        None => sentences.push(format!(
            "{roles_n} roles, but at most {MAX_AGENTS_PER_REQUEST} agents per request, so keeping the first {agent_count} and dropping {}.",
            and_list(&dropped)
        )),
        Some((n, words)) => {
            let mut asked = format!("The instructions ask for {n} agent{} (\"{words}\")", plural(*n));
            if *n > MAX_AGENTS_PER_REQUEST {
                asked.push_str(&format!("; the limit is {MAX_AGENTS_PER_REQUEST} per request"));
            }
            sentences.push(if agent_count > roles_n {
                let repeats: Vec<&str> = roles[planned.len()..].iter().map(|r| r.role.as_str()).collect();
                format!(
                    "{asked}: {agent_count} agents, more than the {roles_n} role{}, so roles repeat in order ({}).",
                    plural(roles_n),
                    and_list(&repeats)
                )
            } else if agent_count < roles_n {
                format!(
                    "{asked}: {agent_count} agent{}, fewer than the {roles_n} roles, so keeping {} and dropping {}.",
                    plural(agent_count),
                    and_list(&kept),
                    and_list(&dropped)
                )
            } else {
                format!("{asked}: {agent_count} agent{}, one per role.", plural(agent_count))
            });
        }
    }
    sentences.push(format!(
        "Estimated {} tokens for one answer from every agent.",
        thousands(token_budget)
    ));
    sentences.join(" ")
}

/// Active models of `catalogue` that have at least one of `wanted`, best first: most of
/// `wanted` matched, then lowest `min_tier`, then id. Each with the capabilities matched, in
/// `wanted`'s order.
///
/// With `prefer_first`, on equal counts a model having `wanted[0]` (a role's main capability:
/// `CodeReview` for a Code Reviewer) comes before one that lacks it.
fn rank<'a>(
    catalogue: &'a [ModelSummary],
    wanted: &[Capability],
    prefer_first: bool,
) -> Vec<(&'a ModelSummary, Vec<Capability>)> {
    let mut ranked: Vec<(&ModelSummary, Vec<Capability>)> = catalogue
        .iter()
        .filter(|m| m.state == ModelState::Active)
        .map(|m| {
            let matched = wanted
                .iter()
                .copied()
                .filter(|c| m.capabilities.contains(c))
                .collect::<Vec<_>>();
            (m, matched)
        })
        .filter(|(_, matched)| !matched.is_empty())
        .collect();
    let has_first = |matched: &[Capability]| prefer_first && matched.first() == wanted.first();
    ranked.sort_by(|(a, am), (b, bm)| {
        bm.len()
            .cmp(&am.len())
            .then(has_first(bm).cmp(&has_first(am)))
            .then(a.min_tier.cmp(&b.min_tier))
            .then(a.id.cmp(&b.id))
    });
    ranked
}

fn capability_list(capabilities: &[Capability]) -> String {
    and_list(
        &capabilities
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
    )
}

/// Matches `analysis` against the repository's `catalogue`: fills `suggested_models` with the
/// best [`MAX_SUGGESTED_MODELS`] Active models for the capabilities of all roles, and gives
/// each role the best Active model for its own capabilities (`RolePlan.model`), appending why
/// to the role's reason. Only `Active` models are considered (never uploading, verified or
/// deprecated ones); a model must have at least one capability asked for. Ranking: most
/// capabilities matched, then lowest `min_tier`, then id — deterministic. For a role, a model
/// with the role's main capability (its first) wins a tie before `min_tier` is looked at.
///
/// Calling it again (e.g. with a newer catalogue) replaces the earlier choices.
pub fn suggest_models(analysis: &mut InstructionAnalysis, catalogue: &[ModelSummary]) {
    // The roles' choices first: the suggestions say which roles each model serves.
    let mut chosen: Vec<Option<ModelId>> = Vec::with_capacity(analysis.roles.len());
    for role in &mut analysis.roles {
        if let Some(at) = role.reason.find(MODEL_REASON_MARKER) {
            role.reason.truncate(at);
        }
        let best = rank(catalogue, &role.capabilities, true).into_iter().next();
        let why = match &best {
            Some((model, matched)) => format!(
                "{} has {} ({} of {} capabilities), usable from tier {:?}",
                model.id,
                capability_list(matched),
                matched.len(),
                role.capabilities.len(),
                model.min_tier
            ),
            None => format!(
                "none, no Active model has any of {}",
                capability_list(&role.capabilities)
            ),
        };
        role.model = best.map(|(m, _)| m.id.clone());
        role.reason.push_str(MODEL_REASON_MARKER);
        role.reason.push_str(&why);
        chosen.push(role.model.clone());
    }

    let mut wanted: Vec<Capability> = Vec::new();
    for role in &analysis.roles {
        for c in &role.capabilities {
            if !wanted.contains(c) {
                wanted.push(*c);
            }
        }
    }
    analysis.suggested_models = rank(catalogue, &wanted, false)
        .into_iter()
        .take(MAX_SUGGESTED_MODELS)
        .map(|(model, matched)| {
            let missing: Vec<Capability> = wanted
                .iter()
                .copied()
                .filter(|c| !matched.contains(c))
                .collect();
            let mut reason = format!(
                "has {}: {} of the {} capabilities the roles need",
                capability_list(&matched),
                matched.len(),
                wanted.len()
            );
            if !missing.is_empty() {
                reason.push_str(&format!(" (lacks {})", capability_list(&missing)));
            }
            reason.push_str(&format!("; usable from tier {:?}", model.min_tier));
            let serves: Vec<&str> = analysis
                .roles
                .iter()
                .zip(&chosen)
                .filter(|(_, c)| c.as_ref() == Some(&model.id))
                .map(|(r, _)| r.role.as_str())
                .collect();
            if !serves.is_empty() {
                reason.push_str(&format!("; best model for {}", and_list(&serves)));
            }
            SuggestedModel {
                model: model.id.clone(),
                name: model.name.clone(),
                score: matched.len() as u32,
                matched,
                reason,
            }
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use ohms_types::Tier;

    fn roles(text: &str) -> Vec<String> {
        analyze(text)
            .unwrap_or_else(|err| panic!("{text:?}: {err}"))
            .roles
            .into_iter()
            .map(|r| r.role)
            .collect()
    }

    fn role<'a>(analysis: &'a InstructionAnalysis, name: &str) -> &'a RolePlan {
        analysis
            .roles
            .iter()
            .find(|r| r.role == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", analysis.roles))
    }

    /// Instructions and exactly the roles they lead to.
    const TABLE: &[(&str, &[&str])] = &[
        // The SPEC's example.
        (
            "create coding agents for Python development and testing",
            &["Python Developer", "Code Reviewer", "Test Generator"],
        ),
        (
            "Build a REST API in Rust",
            &["Rust Developer", "Code Reviewer"],
        ),
        (
            "I need a TypeScript frontend with React components",
            &["JavaScript Developer", "Code Reviewer"],
        ),
        (
            "write some javascript",
            &["JavaScript Developer", "Code Reviewer"],
        ),
        (
            "Software engineering help",
            &["Software Developer", "Code Reviewer"],
        ),
        // A language only qualifies another code task.
        ("Write unit tests for my Rust crate", &["Test Generator"]),
        ("Review pull requests", &["Code Reviewer"]),
        (
            "Help me debug a crash in my Node.js server",
            &["Debugging Specialist"],
        ),
        ("Write docs for our Python library", &["Technical Writer"]),
        ("machine learning with PyTorch", &["Data Analyst"]),
        ("Teach me TypeScript", &["Tutor"]),
        (
            "Pythonic code reviews and TDD",
            &["Code Reviewer", "Test Generator"],
        ),
        // Synonyms, plurals, -ing forms and multi-word phrases.
        (
            "Analyze sales data in spreadsheets and build dashboards",
            &["Data Analyst"],
        ),
        ("data science", &["Data Analyst"]),
        ("Summarize my emails every morning", &["Summarizer"]),
        ("tl;dr of meeting notes", &["Summarizer"]),
        (
            "Translate product descriptions from English to Spanish",
            &["Translator"],
        ),
        ("Plan a product roadmap with milestones", &["Planner"]),
        (
            "Research competitors and write a market research report",
            &["Researcher"],
        ),
        (
            "Write blog posts and newsletters about gardening",
            &["Writer"],
        ),
        ("Help my kid with algebra homework", &["Math Tutor"]),
        ("Solve calculus problems step by step", &["Math Solver"]),
        ("Tell bedtime stories to children", &["Storyteller"]),
        ("A friendly chatbot for customer support", &["Assistant"]),
        (
            "Code review, unit testing and bug fixing for a JavaScript app",
            &[
                "JavaScript Developer",
                "Code Reviewer",
                "Test Generator",
                "Debugging Specialist",
            ],
        ),
        (
            "Write a Django web app with pytest tests and a README",
            &[
                "Python Developer",
                "Code Reviewer",
                "Test Generator",
                "Technical Writer",
            ],
        ),
        (
            "Refactor legacy Java code",
            &["Software Developer", "Code Reviewer"],
        ),
        (
            "Research, plan and write essays about climate",
            &["Researcher", "Planner", "Writer"],
        ),
        (
            "Write Python scripts to clean CSV files and summarize the results",
            &[
                "Python Developer",
                "Code Reviewer",
                "Data Analyst",
                "Summarizer",
            ],
        ),
        (
            "Agents that chat in Spanish and translate to English",
            &["Translator", "Assistant"],
        ),
        (
            "Write a story about a dragon and a poem",
            &["Writer", "Storyteller"],
        ),
        (
            "I plan to build a Rust canister with unit tests",
            &["Rust Developer", "Code Reviewer", "Test Generator"],
        ),
        // Objects of another task are not tasks themselves.
        ("summarize these articles", &["Summarizer"]),
        ("debug my code", &["Debugging Specialist"]),
        // Punctuation, hyphens and mixed case.
        (
            "unit-tests, integration-tests & code-reviews",
            &["Code Reviewer", "Test Generator"],
        ),
        (
            "PYTHON Development!!! (and TESTING?)",
            &["Python Developer", "Code Reviewer", "Test Generator"],
        ),
        // Words of other languages are ignored.
        (
            "Schreibe Python code und unit tests bitte",
            &["Python Developer", "Code Reviewer", "Test Generator"],
        ),
        ("Créer des agents pour écrire des histoires", &["Assistant"]),
        // Nothing recognized.
        ("asdf qwerty", &["Assistant"]),
        (
            "develop a marketing idea for business development",
            &["Assistant"],
        ),
        // Counts, in digits and in words.
        (
            "CREATE 3 AGENTS FOR PYTHON!!!",
            &["Python Developer", "Code Reviewer", "Python Developer 2"],
        ),
        (
            "create five agents for rust development",
            &[
                "Rust Developer",
                "Code Reviewer",
                "Rust Developer 2",
                "Code Reviewer 2",
                "Rust Developer 3",
            ],
        ),
        (
            "create 1 agent for python development and testing",
            &["Python Developer"],
        ),
        (
            "a team of two agents: summarize research papers",
            &["Researcher", "Summarizer"],
        ),
        (
            "Create three agents",
            &["Assistant", "Assistant 2", "Assistant 3"],
        ),
        (
            "create 0 agents for python",
            &["Python Developer", "Code Reviewer"],
        ),
        // Over the limit: at most ten agents.
        (
            "create 50 agents for data science",
            &[
                "Data Analyst",
                "Data Analyst 2",
                "Data Analyst 3",
                "Data Analyst 4",
                "Data Analyst 5",
                "Data Analyst 6",
                "Data Analyst 7",
                "Data Analyst 8",
                "Data Analyst 9",
                "Data Analyst 10",
            ],
        ),
        (
            "coding, testing, debugging, docs, data analysis, summarize, translate, plan, research, essays, math, stories, chat",
            &[
                "Software Developer",
                "Code Reviewer",
                "Test Generator",
                "Debugging Specialist",
                "Technical Writer",
                "Data Analyst",
                "Researcher",
                "Planner",
                "Summarizer",
                "Translator",
            ],
        ),
    ];

    #[test]
    fn instructions_lead_to_exactly_these_roles() {
        assert!(TABLE.len() >= 30);
        let mut failures = Vec::new();
        for (text, expected) in TABLE {
            let got = roles(text);
            if got != *expected {
                failures.push(format!(
                    "{text:?}\n  expected {expected:?}\n  got      {got:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn the_spec_example_in_full() {
        let a = analyze("create coding agents for Python development and testing").unwrap();
        let found: Vec<(&str, Vec<&str>)> = a
            .capabilities
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.matched.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("coding", vec!["coding", "development"]),
                ("python", vec!["python"]),
                ("testing", vec!["testing"]),
            ]
        );
        assert_eq!(a.capabilities[1].model_capabilities, [Capability::Python]);
        assert_eq!(a.agent_count, 3);
        assert_eq!(a.requested_count, None);
        assert_eq!(a.token_budget, 1_500 + 800 + 1_200);
        assert_eq!(
            a.token_budget_reason,
            "Python Developer 1,500 + Code Reviewer 800 + Test Generator 1,200 tokens per answer = 3,500 tokens for one answer from each of the 3 agents"
        );
        assert!(a.suggested_models.is_empty());

        let dev = role(&a, "Python Developer");
        assert_eq!(dev.capabilities, [Capability::Python, Capability::Code]);
        assert_eq!(dev.tokens_per_answer, 1_500);
        assert_eq!(dev.model, None);
        assert!(
            dev.system_prompt.contains("Python developer"),
            "{}",
            dev.system_prompt
        );
        assert!(dev.reason.contains("\"python\"") && dev.reason.contains("\"development\""));

        let reviewer = role(&a, "Code Reviewer");
        assert_eq!(
            reviewer.capabilities,
            [Capability::CodeReview, Capability::Code, Capability::Python]
        );
        assert!(reviewer.system_prompt.contains("Python code"));
        assert!(
            reviewer
                .reason
                .contains("every coding request gets a reviewer")
        );

        let tests = role(&a, "Test Generator");
        assert_eq!(
            tests.capabilities,
            [Capability::Testing, Capability::Code, Capability::Python]
        );
        assert!(tests.reason.contains("\"testing\""));
        assert!(
            a.explanation
                .contains("Python Developer, Code Reviewer and Test Generator")
        );
        assert!(a.explanation.contains("3,500 tokens"));
    }

    #[test]
    fn prompts_and_capabilities_follow_the_stated_focus() {
        let a = analyze("Write unit tests for my Rust crate").unwrap();
        let tests = role(&a, "Test Generator");
        assert_eq!(
            tests.capabilities,
            [Capability::Testing, Capability::Code, Capability::Rust]
        );
        assert!(
            tests.system_prompt.contains("Rust code"),
            "{}",
            tests.system_prompt
        );
        assert!(tests.reason.contains("\"unit tests\"") && tests.reason.contains("\"rust\""));

        let a = analyze("a TypeScript frontend").unwrap();
        let dev = role(&a, "JavaScript Developer");
        assert!(
            dev.system_prompt.contains("TypeScript developer"),
            "{}",
            dev.system_prompt
        );

        let a = analyze("Translate product descriptions from English to Spanish").unwrap();
        let prompt = &role(&a, "Translator").system_prompt;
        assert!(prompt.contains("between English and Spanish"), "{prompt}");

        let a = analyze("Help my kid with algebra homework").unwrap();
        let tutor = role(&a, "Math Tutor");
        assert!(tutor.system_prompt.contains("algebra"));
        assert_eq!(
            tutor.capabilities,
            [Capability::Math, Capability::Reasoning, Capability::Chat]
        );

        let a = analyze("Refactor legacy Java code").unwrap();
        let prompt = &role(&a, "Software Developer").system_prompt;
        assert!(prompt.contains("in Java"), "{prompt}");
    }

    #[test]
    fn nothing_recognized_gives_a_general_assistant() {
        let a = analyze("asdf qwerty").unwrap();
        assert!(a.capabilities.is_empty());
        assert_eq!(a.roles.len(), 1);
        assert_eq!(a.roles[0].capabilities, [Capability::Chat]);
        assert!(a.roles[0].reason.contains("no capability recognized"));
        assert!(a.explanation.contains("No capability recognized"));
        assert_eq!(a.token_budget, 500);
    }

    #[test]
    fn counts_in_digits_and_words() {
        let count = |text: &str| requested_count(&taxonomy::tokenize(text)).map(|(n, _)| n);
        assert_eq!(count("create 5 agents"), Some(5));
        assert_eq!(count("Create three Python coding agents"), Some(3));
        assert_eq!(count("I want twenty bots"), Some(20));
        assert_eq!(count("a team of four, please"), Some(4));
        assert_eq!(count("a dozen helpers"), Some(12));
        assert_eq!(count("create 0 agents"), None);
        assert_eq!(count("python 3"), None);
        assert_eq!(count("5 of them. agents"), None);
        assert_eq!(count("99999999999 agents"), Some(u32::MAX));

        let a = analyze("Create three agents").unwrap();
        assert_eq!((a.requested_count, a.agent_count), (Some(3), 3));
        assert!(
            a.explanation.contains("(\"three agents\")"),
            "{}",
            a.explanation
        );
        assert!(a.roles[2].reason.contains("repeated"));
        assert_eq!(a.token_budget, 3 * 500);
        assert!(a.token_budget_reason.starts_with("3 × Assistant 500"));
    }

    #[test]
    fn counts_above_the_limit_are_capped() {
        let a = analyze("create 15 agents for python development").unwrap();
        assert_eq!(a.requested_count, Some(15));
        assert_eq!(a.agent_count, MAX_AGENTS_PER_REQUEST);
        assert_eq!(a.roles.len(), 10);
        assert_eq!(a.roles[9].role, "Code Reviewer 5");
        assert!(
            a.explanation.contains("the limit is 10 per request"),
            "{}",
            a.explanation
        );
        assert_eq!(a.token_budget, 5 * 1_500 + 5 * 800);
        assert!(
            a.token_budget_reason
                .starts_with("5 × Python Developer 1,500 + 5 × Code Reviewer 800"),
            "{}",
            a.token_budget_reason
        );
    }

    #[test]
    fn fewer_agents_than_roles_keep_the_first_roles() {
        let a = analyze("create 1 agent for python development and testing").unwrap();
        assert_eq!((a.requested_count, a.agent_count), (Some(1), 1));
        assert!(
            a.explanation.contains(
                "fewer than the 3 roles, so keeping Python Developer and dropping Code Reviewer and Test Generator"
            ),
            "{}",
            a.explanation
        );
        assert_eq!(a.token_budget, 1_500);
    }

    #[test]
    fn too_many_roles_keep_the_first_ten() {
        let a = analyze(TABLE.last().unwrap().0).unwrap();
        assert_eq!(a.agent_count, 10);
        assert!(
            a.explanation
                .contains("dropping Writer, Storyteller, Math Solver and Assistant"),
            "{}",
            a.explanation
        );
    }

    #[test]
    fn empty_and_oversized_instructions_are_refused() {
        for text in ["", "   ", " \n\t "] {
            match analyze(text) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "instructions"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let at_limit = "a".repeat(MAX_INSTRUCTION_BYTES);
        assert!(analyze(&at_limit).is_ok());
        // Bytes, not characters: 2,049 two-byte characters are 4,098 bytes.
        for text in ["a".repeat(MAX_INSTRUCTION_BYTES + 1), "é".repeat(2_049)] {
            match analyze(&text) {
                Err(Error::InvalidArgument { field, reason }) => {
                    assert_eq!(field, "instructions");
                    assert!(reason.contains("4096"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    fn model(id: &str, capabilities: &[Capability], tier: Tier, state: ModelState) -> ModelSummary {
        ModelSummary {
            id: ModelId::parse(id, "id").unwrap(),
            name: format!("Model {id}"),
            version: "1.0.0".to_string(),
            description: String::new(),
            capabilities: capabilities.to_vec(),
            tags: Vec::new(),
            family: "llama".to_string(),
            mode: "2bit".to_string(),
            bits_per_weight: 2.1,
            parameters: 135_000_000,
            compressed_bytes: 40_000_000,
            shard_count: 1,
            root_hash: "00".repeat(32),
            min_tier: tier,
            creator: Principal::anonymous(),
            state,
            created_at_nanos: 0,
            updated_at_nanos: 0,
            usage_tokens: 0,
        }
    }

    fn catalogue() -> Vec<ModelSummary> {
        use Capability as C;
        let all = [
            C::Chat,
            C::Code,
            C::Python,
            C::JavaScript,
            C::Rust,
            C::CodeReview,
            C::Testing,
            C::Summarize,
            C::Translate,
            C::Writing,
            C::Reasoning,
            C::Math,
            C::Storytelling,
        ];
        vec![
            model("deprecated-all", &all, Tier::Free, ModelState::Deprecated),
            model("uploading-all", &all, Tier::Free, ModelState::Uploading),
            model("verified-all", &all, Tier::Free, ModelState::Verified),
            model(
                "reviewer",
                &[C::CodeReview, C::Code],
                Tier::Pro,
                ModelState::Active,
            ),
            model(
                "coder-py-pro",
                &[C::Code, C::Python, C::Testing],
                Tier::Pro,
                ModelState::Active,
            ),
            model(
                "coder-py",
                &[C::Python, C::Testing, C::Code],
                Tier::Basic,
                ModelState::Active,
            ),
            model(
                "alpha-py",
                &[C::Code, C::Python, C::Testing],
                Tier::Basic,
                ModelState::Active,
            ),
            model("chat-small", &[C::Chat], Tier::Free, ModelState::Active),
        ]
    }

    #[test]
    fn suggests_active_models_best_first() {
        let mut a = analyze("create coding agents for Python development and testing").unwrap();
        suggest_models(&mut a, &catalogue());
        let ids: Vec<&str> = a
            .suggested_models
            .iter()
            .map(|m| m.model.as_str())
            .collect();
        // Three capabilities each: lower tier first, then id; the reviewer has two; the chat
        // model none; deprecated, uploading and verified models never.
        assert_eq!(ids, ["alpha-py", "coder-py", "coder-py-pro", "reviewer"]);
        let best = &a.suggested_models[0];
        assert_eq!(best.score, 3);
        assert_eq!(
            best.matched,
            [Capability::Python, Capability::Code, Capability::Testing]
        );
        assert_eq!(best.name, "Model alpha-py");
        assert!(
            best.reason.contains("3 of the 4 capabilities"),
            "{}",
            best.reason
        );
        assert!(best.reason.contains("lacks CodeReview"), "{}", best.reason);
        assert!(
            best.reason
                .contains("best model for Python Developer and Test Generator"),
            "{}",
            best.reason
        );

        let chosen: Vec<(&str, Option<&str>)> = a
            .roles
            .iter()
            .map(|r| (r.role.as_str(), r.model.as_ref().map(ModelId::as_str)))
            .collect();
        assert_eq!(
            chosen,
            [
                ("Python Developer", Some("alpha-py")),
                // Two capabilities either way: the model with CodeReview wins over the lower tier.
                ("Code Reviewer", Some("reviewer")),
                ("Test Generator", Some("alpha-py")),
            ]
        );
        assert!(
            a.roles[1]
                .reason
                .contains(" — model: reviewer has CodeReview and Code")
        );
    }

    #[test]
    fn suggest_models_is_deterministic_and_idempotent() {
        let mut once = analyze("Write a Django web app with pytest tests and a story").unwrap();
        suggest_models(&mut once, &catalogue());
        let mut twice = once.clone();
        suggest_models(&mut twice, &catalogue());
        assert_eq!(once, twice);
        let storyteller = role(&once, "Storyteller");
        assert_eq!(storyteller.model, None);
        assert!(
            storyteller
                .reason
                .ends_with(" — model: none, no Active model has any of Storytelling and Writing"),
            "{}",
            storyteller.reason
        );

        // Only inactive models: nothing suggested, no model chosen.
        let inactive: Vec<ModelSummary> = catalogue()
            .into_iter()
            .filter(|m| m.state != ModelState::Active)
            .collect();
        let mut a = analyze("python development").unwrap();
        suggest_models(&mut a, &inactive);
        assert!(a.suggested_models.is_empty());
        assert!(a.roles.iter().all(|r| r.model.is_none()));
    }

    #[test]
    fn at_most_five_suggestions() {
        let many: Vec<ModelSummary> = (0..8)
            .map(|i| {
                model(
                    &format!("m{i}"),
                    &[Capability::Chat],
                    Tier::Basic,
                    ModelState::Active,
                )
            })
            .collect();
        let mut a = analyze("a chatbot").unwrap();
        suggest_models(&mut a, &many);
        let ids: Vec<&str> = a
            .suggested_models
            .iter()
            .map(|m| m.model.as_str())
            .collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4"]);
        assert_eq!(a.roles[0].model.as_ref().map(ModelId::as_str), Some("m0"));
    }

    #[test]
    fn the_same_input_gives_the_same_output() {
        for (text, _) in TABLE {
            assert_eq!(analyze(text).unwrap(), analyze(text).unwrap());
        }
        let text = "create 4 agents: Python development, code reviews";
        let mut a = analyze(text).unwrap();
        let mut b = analyze(text).unwrap();
        suggest_models(&mut a, &catalogue());
        suggest_models(&mut b, &catalogue());
        assert_eq!(a, b);
    }

    #[test]
    fn round_trips_through_candid() {
        let mut a = analyze("create coding agents for Python development and testing").unwrap();
        suggest_models(&mut a, &catalogue());
        let bytes = candid::encode_one(&a).unwrap();
        assert_eq!(
            candid::decode_one::<InstructionAnalysis>(&bytes).unwrap(),
            a
        );
    }
}
