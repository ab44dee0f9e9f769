//! Chat prompts: the Jinja template the file carries in `tokenizer.chat_template`,
//! rendered with minijinja the way Hugging Face transformers renders it
//! (`trim_blocks` and `lstrip_blocks` on, loop controls, `raise_exception`, Python string
//! methods through minijinja-contrib's pycompat).

use minijinja::{context, Environment, Error, ErrorKind, Value};

use super::GenerateError;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// The GGUF key holding the template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn user(content: &str) -> Message {
        Message {
            role: "user".to_owned(),
            content: content.to_owned(),
        }
    }
}

/// The file's chat template; a file without one is an error naming the file and the key.
pub fn chat_template(file: &GgufFile) -> Result<&str, GenerateError> {
    if !file.contains_key(CHAT_TEMPLATE_KEY) {
        return Err(GenerateError::NoChatTemplate {
            file: file.origin().to_owned(),
        });
    }
    Ok(file.get_str(CHAT_TEMPLATE_KEY)?)
}

/// Render `template` with `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.
pub fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String, GenerateError> {
    let err = |e: Error| GenerateError::ChatTemplate {
        message: format!("{e:#}"),
    };
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(err)?,
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat_template", template).map_err(err)?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
        .collect();
    env.get_template("chat_template")
        .and_then(|t| {
            t.render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            })
        })
        .map_err(err)
}

/// `rendered` without a leading `bos_text` when tokenization will add BOS anyway, so the
/// prompt does not start with two (llama.cpp common/chat.cpp does the same).
pub fn strip_bos<'a>(rendered: &'a str, bos_text: &str, adds_bos: bool) -> &'a str {
    match rendered.strip_prefix(bos_text) {
        Some(rest) if adds_bos && !bos_text.is_empty() => rest,
        _ => rendered,
    }
}

/// The prompt text for one user message in `file`'s chat template, with the generation
/// prompt added and the vocabulary's BOS/EOS texts as `bos_token` / `eos_token`; a
/// leading BOS text is dropped when the vocabulary adds BOS itself ([`strip_bos`]).
pub fn user_prompt(
    file: &GgufFile,
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<String, GenerateError> {
    let template = chat_template(file)?;
    let special = |id: Option<u32>| {
        id.and_then(|id| tokenizer.token_text(id))
            .unwrap_or("")
            .to_owned()
    };
    let bos = special(tokenizer.bos());
    let rendered = render(
        template,
        &[Message::user(text)],
        true,
        &bos,
        &special(tokenizer.eos()),
    )?;
    Ok(strip_bos(&rendered, &bos, tokenizer.adds_bos()).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ChatML template the BPE fixtures carry (tools/fixtures), as Qwen2 ships it.
    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn chatml_renders_the_user_turn_and_the_generation_prompt() {
        let out = render(CHATML, &[Message::user("Hi")], true, "", "").unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = render(CHATML, &[Message::user("Hi")], false, "", "").unwrap();
        assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn blocks_are_trimmed_as_transformers_does() {
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation
        // before one.
        let t = "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}";
        let out = render(t, &[Message::user("a"), Message::user("b")], false, "", "").unwrap();
        assert_eq!(out, "[a]\n[b]\n");
    }

    #[test]
    fn special_token_variables_and_python_methods() {
        let t = "{{ bos_token }}{{ messages[0].content.strip() }}{% if messages[0].content.startswith(' x') %}!{% endif %}{{ eos_token }}";
        let out = render(t, &[Message::user(" x ")], true, "<s>", "</s>").unwrap();
        assert_eq!(out, "<s>x!</s>");
    }

    #[test]
    fn a_template_written_bos_is_dropped_only_when_tokenization_adds_one() {
        let t = "{{ bos_token }}[INST] {{ messages[0].content }} [/INST]";
        let out = render(t, &[Message::user("Hi")], true, "<s>", "</s>").unwrap();
        assert_eq!(out, "<s>[INST] Hi [/INST]");
        assert_eq!(strip_bos(&out, "<s>", true), "[INST] Hi [/INST]");
        assert_eq!(strip_bos(&out, "<s>", false), out);
        assert_eq!(strip_bos(&out, "", true), out);
        assert_eq!(strip_bos("x<s>", "<s>", true), "x<s>");
    }

    /// A Qwen3-style template (namespace, reversed slice, loop.index0, `is string`,
    /// `is defined`, Python string methods, `{% break %}`, `{%-` whitespace control).
    const QWEN3_STYLE: &str = r#"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if message.role == "user" or message.role == "system" %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- if '</think>' in content %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {{- '<|im_start|>' + message.role + '\n' + content.strip() }}
        {{- '<|im_end|>\n' }}
    {%- endif %}
    {%- if loop.last %}{% break %}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
{{- '[' ~ ns.last_query_index ~ bos_token ~ ']' }}
"#;

    /// The expected text is Python jinja2 3.1.6's rendering with transformers' settings
    /// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols) of the
    /// same template and messages.
    #[test]
    fn a_qwen3_style_template_renders_as_jinja2_does() {
        let m = |role: &str, content: &str| Message {
            role: role.to_owned(),
            content: content.to_owned(),
        };
        let messages = [
            m("system", "Be brief."),
            m("user", "2+2?"),
            m("assistant", "<think>\nadd\n</think>\n\n 4 "),
            m("user", "<tool_response>x</tool_response>"),
        ];
        let out = render(QWEN3_STYLE, &messages, true, "<s>", "</s>").unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n\
             <|im_start|>assistant\n4<|im_end|>\n\
             <|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n\
             <|im_start|>assistant\n[1<s>]"
        );
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_errors() {
        let t = "{{ raise_exception('only user turns') }}";
        let e = render(t, &[Message::user("x")], true, "", "").unwrap_err();
        assert!(e.to_string().contains("only user turns"), "{e}");
        let e = render("{% for %}", &[], true, "", "").unwrap_err();
        assert!(e.to_string().contains("chat template"), "{e}");
    }
}
