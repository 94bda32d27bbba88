//! Chat prompts in ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), the format of
//! SmolLM2-Instruct's template.

use alloc::string::String;
use alloc::vec::Vec;

use super::Tokenizer;

const START: &str = "<|im_start|>";
const END: &str = "<|im_end|>";

/// One turn of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    /// `system`, `user` or `assistant`.
    pub role: &'a str,
    pub content: &'a str,
}

/// What the template of a ChatML model says beyond the markers.
pub(super) struct ChatFormat {
    /// The system turn the template inserts when a conversation does not start with one.
    default_system: Option<String>,
}

impl ChatFormat {
    /// Recognises a ChatML Jinja template; `None` for any other template.
    pub(super) fn from_template(template: &str) -> Option<Self> {
        if !template.contains(START) || !template.contains(END) {
            return None;
        }
        let system_open = alloc::format!("{START}system\n");
        let default_system = template.find(&system_open).and_then(|at| {
            let body = &template[at + system_open.len()..];
            body.find(END).map(|end| String::from(&body[..end]))
        });
        Some(Self { default_system })
    }

    pub(super) fn end_marker(&self) -> &'static str {
        END
    }

    /// Markers are inserted as token ids; role and content are encoded as plain text, so
    /// message content cannot open or close turns.
    pub(super) fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage<'_>],
    ) -> Option<Vec<u32>> {
        let start = tokenizer.token_id(START)?;
        let end = tokenizer.token_id(END)?;
        let mut out = Vec::new();
        let turn = |role: &str, content: &str, out: &mut Vec<u32>| {
            out.push(start);
            tokenizer.encode_fragment(&alloc::format!("{role}\n{content}"), false, out);
            out.push(end);
            tokenizer.encode_fragment("\n", false, out);
        };
        if messages.first().is_none_or(|m| m.role != "system")
            && let Some(system) = &self.default_system
        {
            turn("system", system, &mut out);
        }
        for m in messages {
            turn(m.role, m.content, &mut out);
        }
        out.push(start);
        tokenizer.encode_fragment("assistant\n", false, &mut out);
        Some(out)
    }
}
