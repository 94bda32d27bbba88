//! The capability taxonomy `analyze_instructions` matches a user's instructions against.
//!
//! Pure data and pure functions: no canister calls, no state, no randomness — the same text
//! always gives the same matches.
//!
//! # How text is matched
//!
//! 1. [`tokenize`] lowercases the text and splits it into words: maximal runs of alphanumeric
//!    characters (`node.js` → `node js`, `tl;dr` → `tl dr`, `Python-Entwicklung` →
//!    `python entwicklung`). Words of other languages stay words and simply match nothing.
//! 2. [`STOPWORDS`] (articles, possessives) are skipped by phrase matching, so "review my code"
//!    and "review the code" both read "review code". They still count for agent numbers.
//! 3. [`recognize`] walks the remaining words left to right and, at each word, takes the
//!    **longest** phrase of the taxonomy that starts there (phrases match consecutive words).
//!    The words of a match are consumed: "code review" is *code review*, not *coding* as well;
//!    "test plan" is *testing*, not *planning*; "user stories" is *planning*, not *storytelling*.
//!    A phrase listed by several capabilities (`pandas`: python and data analysis) matches all.
//!    [`IGNORED_PHRASES`] are consumed without matching anything ("business development").
//! 4. There is no stemming: plurals and `-ing` forms are listed explicitly, so every match is a
//!    listed word the explanation can quote.
//! 5. *Object* phrases (a capability's generic nouns such as `code`, `docs`, `articles`,
//!    `stories`) are what another task acts on when they directly follow a task's words: in
//!    "summarize these articles" or "debug my code" they are skipped, in "write articles" or
//!    "code and tests" they count. Only *task* capabilities make the words after them objects;
//!    languages ("python code") do not. The object context lasts over stopwords, `and`/`or`
//!    and further objects, and ends at any other word.

use std::collections::BTreeMap;

use ohms_types::Capability;

/// What role a taxonomy capability plays in planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something to do (write code, test, summarize…): may lead to roles and makes the objects
    /// after it objects.
    Task,
    /// A programming language: qualifies the code roles, or asks for a developer on its own.
    Language,
}

/// One capability of the taxonomy.
///
/// All four phrase lists match the same way; they differ in what a match means:
/// `terms` and `objects` just say the capability is wanted, `topics` and `object_topics` also
/// say what about (they are quoted in the role's system prompt as the user's focus), and
/// `objects`/`object_topics` do not count when they are the object of another task (module
/// documentation, point 5).
#[derive(Debug)]
pub struct Entry {
    /// Stable name, reported in `FoundCapability::name`.
    pub name: &'static str,
    pub kind: Kind,
    pub terms: &'static [&'static str],
    pub topics: &'static [&'static str],
    pub objects: &'static [&'static str],
    pub object_topics: &'static [&'static str],
    /// The model capabilities this capability asks of a model (`ohms_types::Capability`).
    pub model_capabilities: &'static [Capability],
}

impl Entry {
    /// Whether `term` is one of this entry's focus phrases (`topics`, `object_topics`).
    pub fn is_topic(&self, term: &str) -> bool {
        self.topics.contains(&term) || self.object_topics.contains(&term)
    }

    fn phrases(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        let plain = self.terms.iter().chain(self.topics).map(|t| (*t, false));
        let objects = self
            .objects
            .iter()
            .chain(self.object_topics)
            .map(|t| (*t, true));
        plain.chain(objects)
    }
}

/// Skipped by phrase matching (module documentation, point 2).
pub const STOPWORDS: &[&str] = &[
    "a", "an", "the", "my", "our", "your", "their", "his", "her", "its", "this", "that", "these",
    "those", "some", "any", "me", "us",
];

/// Words that keep an object context alive (module documentation, point 5).
const CONJUNCTIONS: &[&str] = &["and", "or", "plus"];

/// Consumed without matching: everyday phrases whose words would otherwise be misread.
pub const IGNORED_PHRASES: &[&str] = &[
    "business development",
    "personal development",
    "professional development",
    "child development",
    "code of conduct",
    "zip code",
    "postal code",
    "dress code",
    "promo code",
    "discount code",
    "test drive",
    "i plan to",
    "we plan to",
    "i am planning to",
    "we are planning to",
    "planning to",
];

/// Indexes into [`TAXONOMY`] (kept in sync by a unit test).
pub mod idx {
    pub const CODING: usize = 0;
    pub const PYTHON: usize = 1;
    pub const RUST: usize = 2;
    pub const JAVASCRIPT: usize = 3;
    pub const TESTING: usize = 4;
    pub const CODE_REVIEW: usize = 5;
    pub const DEBUGGING: usize = 6;
    pub const DOCUMENTATION: usize = 7;
    pub const DATA_ANALYSIS: usize = 8;
    pub const SUMMARIZATION: usize = 9;
    pub const TRANSLATION: usize = 10;
    pub const PLANNING: usize = 11;
    pub const RESEARCH: usize = 12;
    pub const WRITING: usize = 13;
    pub const MATH: usize = 14;
    pub const STORYTELLING: usize = 15;
    pub const TEACHING: usize = 16;
    pub const CHAT: usize = 17;
}

use Capability as C;

/// The taxonomy, in the order capabilities are reported.
#[rustfmt::skip] // Phrase lists read best packed.
pub const TAXONOMY: &[Entry] = &[
    // Writing software in general; other programming languages are topics.
    Entry {
        name: "coding",
        kind: Kind::Task,
        terms: &[
            "coding", "coder", "coders", "programming", "programmer", "programmers",
            "software", "software development", "software engineering", "software engineer",
            "software engineers", "developer", "developers", "development", "dev", "devs",
            "implement", "implements", "implementing", "implementation", "script", "scripts",
            "scripting", "function", "functions", "algorithm", "algorithms", "data structures",
            "api", "apis", "backend", "back end", "frontend", "front end", "full stack",
            "fullstack", "web development", "web app", "web apps", "app", "apps",
            "smart contract", "smart contracts", "canister", "canisters",
        ],
        topics: &[
            "java", "golang", "kotlin", "swift", "ruby", "php", "haskell", "motoko",
            "solidity", "csharp", "html", "css", "bash", "shell scripts",
        ],
        objects: &["code", "codes", "codebase", "codebases", "source code"],
        object_topics: &[],
        model_capabilities: &[C::Code],
    },
    // The Python language and its ecosystem.
    Entry {
        name: "python",
        kind: Kind::Language,
        terms: &["python", "python3", "pythonic"],
        topics: &[
            "django", "flask", "fastapi", "pandas", "numpy", "scipy", "jupyter", "pytorch",
            "pytest", "pypi",
        ],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Python],
    },
    // The Rust language and its ecosystem.
    Entry {
        name: "rust",
        kind: Kind::Language,
        terms: &["rust", "rustlang", "rustacean"],
        topics: &["cargo", "cargo test", "tokio", "axum", "actix", "serde"],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Rust],
    },
    // JavaScript and TypeScript, in browsers and on Node.js.
    Entry {
        name: "javascript",
        kind: Kind::Language,
        terms: &["javascript", "js", "ecmascript", "es6", "typescript", "ts"],
        topics: &[
            "node js", "nodejs", "deno", "npm", "jsx", "tsx", "reactjs", "react js",
            "react native", "react app", "react apps", "react component", "react components",
            "vue", "vuejs", "vue js", "angular", "svelte", "next js", "nextjs", "jquery",
            "express js", "expressjs", "jest", "vitest", "mocha",
        ],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::JavaScript],
    },
    // Writing and running tests.
    Entry {
        name: "testing",
        kind: Kind::Task,
        terms: &[
            "test", "tests", "tested", "testing", "tester", "testers", "unit test",
            "unit tests", "unit testing", "integration test", "integration tests",
            "integration testing", "end to end tests", "end to end testing", "e2e",
            "e2e tests", "test case", "test cases", "test suite", "test suites", "test plan",
            "test plans", "test coverage", "coverage", "qa", "quality assurance", "tdd",
            "test driven development", "regression tests", "regression testing", "fuzzing",
            "fuzz testing", "property based testing",
        ],
        topics: &["pytest", "jest", "vitest", "mocha", "cargo test", "proptest"],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Testing],
    },
    // Reading and criticising code, pull requests, refactoring.
    Entry {
        name: "code review",
        kind: Kind::Task,
        terms: &[
            "code review", "code reviews", "code reviewer", "code reviewers", "code reviewing",
            "review code", "reviews code", "reviewing code", "review pull requests",
            "pull request", "pull requests", "prs", "pr review", "pr reviews",
            "merge request", "merge requests", "code quality", "code audit", "code audits",
            "security review", "security audit", "lint", "linting", "linter",
            "static analysis", "refactor", "refactors", "refactoring",
        ],
        topics: &[],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::CodeReview],
    },
    // Finding and fixing bugs, crashes and errors.
    Entry {
        name: "debugging",
        kind: Kind::Task,
        terms: &[
            "debug", "debugs", "debugged", "debugging", "debugger", "bug", "bugs", "buggy",
            "bugfix", "bugfixes", "bug fix", "bug fixes", "fix bugs", "fixing bugs",
            "troubleshoot", "troubleshoots", "troubleshooting", "stack trace", "stack traces",
            "traceback", "tracebacks", "crash", "crashes", "crashing", "root cause",
            "error message", "error messages", "exception", "exceptions", "segfault",
            "memory leak", "memory leaks",
        ],
        topics: &[],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Code, C::Reasoning],
    },
    // Documenting code: READMEs, API references, guides.
    Entry {
        name: "documentation",
        kind: Kind::Task,
        terms: &[
            "write docs", "write documentation", "writing docs", "writing documentation",
            "document code", "documenting", "docstring", "docstrings", "doc comments",
            "code comments", "technical writing", "technical writer", "technical writers",
        ],
        topics: &[
            "api docs", "api documentation", "api reference", "user guide", "user guides",
            "user manual", "user manuals", "how to guides", "tutorial", "tutorials",
            "changelog", "changelogs", "release notes", "wiki",
        ],
        objects: &["documentation", "docs", "doc"],
        object_topics: &["readme", "readmes"],
        model_capabilities: &[C::Writing, C::Code],
    },
    // Analysing data: statistics, visualisation, data science, machine learning.
    Entry {
        name: "data analysis",
        kind: Kind::Task,
        terms: &[
            "data analysis", "data analyses", "data analyst", "data analysts",
            "data analytics", "analytics", "analyze data", "analyse data", "analyzing data",
            "analysing data", "data science", "data scientist", "data scientists",
            "data visualization", "data visualisation", "visualization", "visualisation",
            "visualize data", "visualise data", "statistics", "statistical", "stats",
            "data mining", "big data", "data pipeline", "data pipelines", "etl",
        ],
        topics: &[
            "machine learning", "deep learning", "ml", "neural network", "neural networks",
            "regression", "forecast", "forecasting", "time series", "dashboard", "dashboards",
            "business intelligence", "sql", "excel", "pandas", "numpy", "scipy", "jupyter",
            "pytorch", "tensorflow",
        ],
        objects: &["dataset", "datasets", "data set", "data sets"],
        object_topics: &["spreadsheet", "spreadsheets", "csv", "csvs"],
        model_capabilities: &[C::Reasoning, C::Math],
    },
    // Condensing text into its key points.
    Entry {
        name: "summarization",
        kind: Kind::Task,
        terms: &[
            "summarize", "summarizes", "summarized", "summarizing", "summarise", "summarises",
            "summarised", "summarising", "summarization", "summarisation", "summarizer",
            "summariser", "summary", "summaries", "tldr", "tl dr", "recap", "recaps",
            "condense", "condenses", "condensing", "key points", "key takeaways", "takeaways",
            "synopsis", "synopses", "sum up", "sums up", "summing up", "bullet points",
        ],
        topics: &["meeting notes"],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Summarize],
    },
    // Translating between natural languages, localisation.
    Entry {
        name: "translation",
        kind: Kind::Task,
        terms: &[
            "translate", "translates", "translated", "translating", "translation",
            "translations", "translator", "translators", "localize", "localise", "localizing",
            "localising", "localization", "localisation", "l10n", "i18n",
            "internationalization", "internationalisation", "multilingual",
        ],
        topics: &[],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Translate],
    },
    // Plans, roadmaps, schedules, breaking work down.
    Entry {
        name: "planning",
        kind: Kind::Task,
        terms: &[
            "plan", "plans", "planning", "planner", "planners", "roadmap", "roadmaps",
            "schedule", "schedules", "scheduling", "project management", "project manager",
            "project plan", "project plans", "strategy", "strategies", "strategic",
            "milestone", "milestones", "timeline", "timelines", "organize", "organise",
            "organizing", "organising", "prioritize", "prioritise", "prioritizing",
            "prioritising", "prioritization", "prioritisation", "to do list", "todo list",
            "todo", "todos", "task breakdown", "break down tasks", "user story",
            "user stories", "sprint", "sprints", "backlog", "agenda",
        ],
        topics: &["itinerary", "itineraries", "trip planning", "travel plans", "meal plan"],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Reasoning],
    },
    // Investigating a question and reporting with sources.
    Entry {
        name: "research",
        kind: Kind::Task,
        terms: &[
            "research", "researches", "researching", "researcher", "researchers",
            "investigate", "investigates", "investigating", "investigation", "fact check",
            "fact checking", "fact checker", "cite sources", "citations", "sources",
            "deep dive", "background research", "find information",
        ],
        topics: &[
            "literature review", "literature reviews", "research papers", "academic papers",
            "scientific papers", "market research", "competitive analysis",
            "competitor analysis",
        ],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Reasoning, C::Summarize],
    },
    // Long-form prose, copy, editing; not code or docs.
    Entry {
        name: "writing",
        kind: Kind::Task,
        terms: &[
            "writer", "writers", "copywriting", "copywriter", "copy writing", "ghostwriting",
            "ghostwriter", "creative writing", "content writing", "content writer",
            "writing assistant", "writing help", "help with writing", "writing skills",
            "writing style", "academic writing", "business writing", "proofread",
            "proofreading", "proofreader", "copyedit", "copyediting", "grammar", "paraphrase",
            "paraphrasing", "rewrite", "rewriting", "prose", "drafting", "write emails",
            "writing emails", "draft emails", "email drafts",
        ],
        topics: &["blogging", "speechwriting", "speech writing"],
        objects: &[],
        object_topics: &[
            "article", "articles", "essay", "essays", "blog", "blogs", "blog post",
            "blog posts", "newsletter", "newsletters", "poem", "poems", "poetry", "lyrics",
            "marketing copy", "ad copy", "press release", "press releases", "cover letter",
            "cover letters", "product descriptions", "social media posts", "speech",
            "speeches",
        ],
        model_capabilities: &[C::Writing],
    },
    // Mathematics: solving problems, proofs, explanations.
    Entry {
        name: "math",
        kind: Kind::Task,
        terms: &["math", "maths", "mathematics", "mathematical", "mathematician"],
        topics: &[
            "algebra", "algebraic", "linear algebra", "calculus", "geometry", "arithmetic",
            "trigonometry", "equation", "equations", "solve equations", "probability",
            "proof", "proofs", "theorem", "theorems", "integral", "integrals", "derivative",
            "derivatives", "number theory", "fractions", "word problems", "math problems",
        ],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Math, C::Reasoning],
    },
    // Short fiction: stories, tales, plots.
    Entry {
        name: "storytelling",
        kind: Kind::Task,
        terms: &[
            "storytelling", "storyteller", "storytellers", "fiction", "fictional", "narrative",
            "narratives", "once upon time",
        ],
        topics: &["plot", "plots"],
        objects: &["story", "stories"],
        object_topics: &[
            "fairy tale", "fairy tales", "bedtime story", "bedtime stories", "short story",
            "short stories", "tale", "tales", "fable", "fables", "novel", "novels",
            "screenplay", "screenplays", "movie script", "movie scripts",
        ],
        model_capabilities: &[C::Storytelling],
    },
    // Tutoring and explaining to a learner.
    Entry {
        name: "teaching",
        kind: Kind::Task,
        terms: &[
            "tutor", "tutors", "tutoring", "teach", "teaches", "teaching", "teacher",
            "teachers", "homework", "student", "students", "lesson", "lessons", "lesson plan",
            "lesson plans", "classroom", "quiz", "quizzes", "flashcards", "exam prep",
            "study guide", "study guides",
        ],
        topics: &[],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Chat, C::Reasoning],
    },
    // Conversation, questions and answers, support.
    Entry {
        name: "chat",
        kind: Kind::Task,
        terms: &[
            "chat", "chats", "chatting", "chatbot", "chatbots", "chat bot", "chat bots",
            "conversation", "conversations", "conversational", "talk", "talking",
            "small talk", "assistant", "assistants", "personal assistant",
            "virtual assistant", "general assistant", "general purpose", "answer questions",
            "answering questions", "faq", "faqs", "customer support", "customer service",
            "support agent", "support agents", "helpdesk", "help desk", "companion",
        ],
        topics: &[],
        objects: &[],
        object_topics: &[],
        model_capabilities: &[C::Chat],
    },
];

/// Natural languages, recognised only to name a translator's languages (never a trigger).
pub const NATURAL_LANGUAGES: &[(&str, &str)] = &[
    ("english", "English"),
    ("french", "French"),
    ("spanish", "Spanish"),
    ("german", "German"),
    ("italian", "Italian"),
    ("portuguese", "Portuguese"),
    ("dutch", "Dutch"),
    ("swedish", "Swedish"),
    ("polish", "Polish"),
    ("russian", "Russian"),
    ("ukrainian", "Ukrainian"),
    ("turkish", "Turkish"),
    ("arabic", "Arabic"),
    ("hebrew", "Hebrew"),
    ("hindi", "Hindi"),
    ("chinese", "Chinese"),
    ("mandarin", "Mandarin"),
    ("japanese", "Japanese"),
    ("korean", "Korean"),
    ("vietnamese", "Vietnamese"),
    ("indonesian", "Indonesian"),
];

/// The token [`tokenize`] puts where a clause ends.
pub const BOUNDARY: &str = ".";

/// Punctuation that ends a clause, unless it sits between two alphanumerics (`node.js`,
/// `tl;dr`, `v1.2`).
const CLAUSE_BREAKS: &[char] = &[
    ',', ';', ':', '.', '!', '?', '(', ')', '[', ']', '{', '}', '"', '\n', '…', '–', '—',
];

/// Lowercase words of `text` — maximal runs of alphanumeric characters — with [`BOUNDARY`]
/// tokens where a clause ends (never first, last or twice in a row).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        let inside_word = !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric());
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if CLAUSE_BREAKS.contains(&c)
            && !inside_word
            && tokens.last().is_some_and(|t| t != BOUNDARY)
        {
            tokens.push(BOUNDARY.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    if tokens.last().is_some_and(|t| t == BOUNDARY) {
        tokens.pop();
    }
    tokens
}

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// A taxonomy capability found in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Index into [`TAXONOMY`].
    pub entry: usize,
    /// The phrases that matched, as listed in the taxonomy, in order of first appearance.
    pub matched: Vec<&'static str>,
}

impl Found {
    pub fn entry(&self) -> &'static Entry {
        &TAXONOMY[self.entry]
    }

    /// The matched focus phrases (`topics`, `object_topics`).
    pub fn topics(&self) -> Vec<&'static str> {
        let entry = self.entry();
        self.matched
            .iter()
            .copied()
            .filter(|t| entry.is_topic(t))
            .collect()
    }
}

/// What one phrase of the index means.
struct Meaning {
    /// `None` for an ignored phrase.
    entry: Option<usize>,
    object: bool,
}

/// Phrases by their first word: (words, phrase, meanings).
type Index = BTreeMap<&'static str, Vec<(Vec<&'static str>, &'static str, Vec<Meaning>)>>;

fn index() -> Index {
    let mut index: Index = BTreeMap::new();
    let mut add = |phrase: &'static str, meaning: Meaning| {
        let words: Vec<&'static str> = phrase.split(' ').collect();
        let list = index.entry(words[0]).or_default();
        match list.iter_mut().find(|(_, p, _)| *p == phrase) {
            Some((_, _, meanings)) => meanings.push(meaning),
            None => list.push((words, phrase, vec![meaning])),
        }
    };
    for phrase in IGNORED_PHRASES {
        add(
            phrase,
            Meaning {
                entry: None,
                object: false,
            },
        );
    }
    for (i, entry) in TAXONOMY.iter().enumerate() {
        for (phrase, object) in entry.phrases() {
            add(
                phrase,
                Meaning {
                    entry: Some(i),
                    object,
                },
            );
        }
    }
    index
}

/// The taxonomy capabilities found in `words` (from [`tokenize`]), in taxonomy order.
pub fn recognize(words: &[String]) -> Vec<Found> {
    let index = index();
    let content: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !is_stopword(w))
        .collect();
    let mut matched: Vec<Vec<&'static str>> = vec![Vec::new(); TAXONOMY.len()];
    // Task entries whose objects the next words may be, and whether the last match was such
    // an object (then `and`/`or` keep the context for a list of objects).
    let mut object_of: Vec<usize> = Vec::new();
    let mut after_object = false;
    let mut i = 0;
    while i < content.len() {
        let longest = index.get(content[i]).and_then(|candidates| {
            candidates
                .iter()
                .filter(|(w, _, _)| content[i..].starts_with(w))
                .max_by_key(|(w, _, _)| w.len())
        });
        let Some((phrase_words, phrase, meanings)) = longest else {
            if !(after_object && CONJUNCTIONS.contains(&content[i])) {
                object_of.clear();
                after_object = false;
            }
            i += 1;
            continue;
        };
        i += phrase_words.len();
        let mut tasks = Vec::new();
        let mut skipped = false;
        for meaning in meanings {
            let Some(e) = meaning.entry else { continue };
            if meaning.object && !object_of.is_empty() && !object_of.contains(&e) {
                skipped = true;
                continue;
            }
            if !matched[e].contains(phrase) {
                matched[e].push(phrase);
            }
            if TAXONOMY[e].kind == Kind::Task {
                tasks.push(e);
            }
        }
        if !tasks.is_empty() {
            object_of = tasks;
            after_object = false;
        } else if skipped {
            after_object = true;
        } else if meanings.iter().all(|m| m.entry.is_none()) {
            object_of.clear();
            after_object = false;
        }
        // Otherwise a language ("python code"): the context carries on.
    }
    matched
        .into_iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty())
        .map(|(entry, matched)| Found { entry, matched })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(&'static str, Vec<&'static str>)> {
        recognize(&tokenize(text))
            .into_iter()
            .map(|f| (f.entry().name, f.matched))
            .collect()
    }

    #[test]
    fn indexes_match_the_table() {
        let expected = [
            (idx::CODING, "coding"),
            (idx::PYTHON, "python"),
            (idx::RUST, "rust"),
            (idx::JAVASCRIPT, "javascript"),
            (idx::TESTING, "testing"),
            (idx::CODE_REVIEW, "code review"),
            (idx::DEBUGGING, "debugging"),
            (idx::DOCUMENTATION, "documentation"),
            (idx::DATA_ANALYSIS, "data analysis"),
            (idx::SUMMARIZATION, "summarization"),
            (idx::TRANSLATION, "translation"),
            (idx::PLANNING, "planning"),
            (idx::RESEARCH, "research"),
            (idx::WRITING, "writing"),
            (idx::MATH, "math"),
            (idx::STORYTELLING, "storytelling"),
            (idx::TEACHING, "teaching"),
            (idx::CHAT, "chat"),
        ];
        assert_eq!(TAXONOMY.len(), expected.len());
        for (i, name) in expected {
            assert_eq!(TAXONOMY[i].name, name);
        }
    }

    #[test]
    fn phrases_are_normalised_and_unique_per_entry() {
        let check = |phrase: &str| {
            let words = tokenize(phrase);
            assert_eq!(
                words.join(" "),
                phrase,
                "{phrase:?} is not in tokenized form"
            );
            assert!(
                !words.iter().any(|w| is_stopword(w)),
                "{phrase:?} holds a stopword and could never match"
            );
        };
        IGNORED_PHRASES.iter().for_each(|p| check(p));
        for entry in TAXONOMY {
            let all: Vec<&str> = entry.phrases().map(|(p, _)| p).collect();
            for (n, phrase) in all.iter().enumerate() {
                check(phrase);
                assert!(
                    !all[..n].contains(phrase),
                    "{phrase:?} is listed twice in {}",
                    entry.name
                );
            }
        }
        for (word, _) in NATURAL_LANGUAGES {
            check(word);
        }
    }

    #[test]
    fn tokenizes_on_non_alphanumerics() {
        assert_eq!(
            tokenize("Build a Node.js API; TL;DR: it's ÉCRIRE-vite!"),
            [
                "build", "a", "node", "js", "api", ".", "tl", "dr", ".", "it", "s", "écrire",
                "vite"
            ]
        );
        assert!(tokenize(" \t\n--!").is_empty());
        assert_eq!(tokenize("(tests), docs."), ["tests", ".", "docs"]);
    }

    #[test]
    fn longest_phrase_wins_and_consumes_its_words() {
        assert_eq!(
            names("code review please"),
            [("code review", vec!["code review"])]
        );
        assert_eq!(names("write a test plan"), [("testing", vec!["test plan"])]);
        assert_eq!(
            names("write user stories"),
            [("planning", vec!["user stories"])]
        );
        assert_eq!(
            names("regression tests"),
            [("testing", vec!["regression tests"])]
        );
        assert_eq!(
            names("business development plan"),
            [("planning", vec!["plan"])]
        );
    }

    #[test]
    fn shared_phrases_match_every_entry() {
        assert_eq!(
            names("pandas"),
            [
                ("python", vec!["pandas"]),
                ("data analysis", vec!["pandas"])
            ]
        );
    }

    #[test]
    fn objects_of_other_tasks_do_not_count() {
        assert_eq!(
            names("summarize these articles"),
            [("summarization", vec!["summarize"])]
        );
        assert_eq!(names("write articles"), [("writing", vec!["articles"])]);
        assert_eq!(names("debug my code"), [("debugging", vec!["debug"])]);
        assert_eq!(
            names("python code and tests"),
            [
                ("coding", vec!["code"]),
                ("python", vec!["python"]),
                ("testing", vec!["tests"])
            ]
        );
        assert_eq!(
            names("translate blog posts and essays"),
            [("translation", vec!["translate"])]
        );
        assert_eq!(
            names("summarize articles, then write essays"),
            [
                ("summarization", vec!["summarize"]),
                ("writing", vec!["essays"])
            ]
        );
        // A task's own words followed by `and` end the context; a clause break does too.
        assert_eq!(
            names("pytest tests and a README"),
            [
                ("python", vec!["pytest"]),
                ("testing", vec!["pytest", "tests"]),
                ("documentation", vec!["readme"])
            ]
        );
        assert_eq!(
            names("debugging, docs"),
            [
                ("debugging", vec!["debugging"]),
                ("documentation", vec!["docs"])
            ]
        );
    }
}
