//! Connects the request body processors in [`crate::body`] to a
//! transaction's variables (the mapping table is in the `body` module docs).

use crate::body::{self, BodyLimits, BodyOutcome, Processor};
use crate::variables::data::Data;
use crate::variables::Var;

/// XPath selectors the engine supports for `XML:`: the root element's text
/// (ModSecurity's `XML:/*`) and every attribute value (`XML://@*`).
pub(crate) const XML_TEXT: &str = "/*";
/// See [`XML_TEXT`].
pub(crate) const XML_ATTRIBUTES: &str = "//@*";

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// Runs `processor` over `body` and stores what it found. `limits.max_args`
/// must already be the capacity left after ARGS_GET.
pub(crate) fn process(
    data: &mut Data,
    processor: Processor,
    content_type: &[u8],
    body: &[u8],
    limits: &BodyLimits,
) -> BodyOutcome {
    let mut out = body::process(processor, content_type, body, limits);
    data.set_scalar(Var::ReqbodyProcessor, processor.name());
    let args = data.coll_mut(Var::ArgsPost);
    for (k, v) in std::mem::take(&mut out.args) {
        args.entries.push((k, v));
    }
    if processor == Processor::Urlencoded {
        data.set_scalar(Var::UrlencodedError, flag(out.urlencoded_error));
    }
    let error = out.error.is_some();
    data.set_scalar(Var::ReqbodyError, flag(error));
    data.set_scalar(Var::ReqbodyProcessorError, flag(error));
    if let Some(e) = &out.error {
        data.set_scalar(Var::ReqbodyErrorMsg, e.message.as_str());
        data.set_scalar(Var::ReqbodyProcessorErrorMsg, e.message.as_str());
    }
    if let Some(m) = &out.multipart {
        for f in &m.files {
            data.coll_mut(Var::Files).push(&f.name, &f.filename);
            data.coll_mut(Var::FilesSizes)
                .push(&f.name, f.size.to_string().as_bytes());
            data.coll_mut(Var::FilesTmpContent)
                .push(&f.name, &f.content);
        }
        data.files_combined_size = m.files_combined_size;
        for (k, v) in m.part_header_lines() {
            data.coll_mut(Var::MultipartPartHeaders).push(k, v);
        }
        for n in &m.names {
            data.coll_mut(Var::MultipartName).push(n, n);
        }
        for n in &m.filenames {
            data.coll_mut(Var::MultipartFilename).push(n, n);
        }
        for (name, value) in m.flag_variables(error) {
            if let Some(var) = Var::from_name(name) {
                data.set_scalar(var, value.to_string());
            }
        }
    }
    if let Some(doc) = &out.xml {
        let xml = data.coll_mut(Var::Xml);
        xml.push(XML_TEXT.as_bytes(), &doc.root_text);
        for (_, v) in &doc.attributes {
            xml.push(XML_ATTRIBUTES.as_bytes(), v);
        }
    }
    out
}
