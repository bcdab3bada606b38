//! The XML of a TwiML/cXML document as a small element tree (names, attributes in document
//! order, text, children), read with quick-xml. Only what call-control documents use is kept:
//! comments, the declaration and processing instructions are skipped, entity and character
//! references resolved; a DTD or an unknown entity is refused (no entity expansion attacks),
//! and the tree is bounded in depth and size.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// Deepest nesting a document may have (`Response/Dial/Sip` is 3; `Gather/Say` 3).
const MAX_DEPTH: usize = 8;
/// Most elements in a document.
const MAX_ELEMENTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// The element's own text (and CDATA), concatenated.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The document's root element; `Err` says what is wrong with the XML.
pub fn read(xml: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut count = 0usize;
    loop {
        let at = reader.buffer_position();
        let event = reader.read_event().map_err(|e| format!("malformed XML at byte {at}: {e}"))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let name = start.name().as_ref().to_owned();
                return Err(format!("<{name}> after the root element"));
            }
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(format!("more than {MAX_DEPTH} levels or {MAX_ELEMENTS} elements"));
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(format!("more than {MAX_ELEMENTS} elements"));
                }
                let e = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            Event::End(_) => {
                // quick-xml checks that end tags match their start tags.
                let Some(done) = stack.pop() else { return Err("an end tag with no start".into()) };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => text(&mut stack, &t.xml10_content(), root.is_some())?,
            Event::CData(c) => text(&mut stack, &c.xml10_content(), root.is_some())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                        .to_owned(),
                    Err(e) => return Err(format!("bad character reference &{};: {e}", &*r)),
                };
                text(&mut stack, &resolved, root.is_some())?;
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let name = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("<{name}>: bad attribute: {e}"))?;
        let key = attr.key.as_ref().to_owned();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("<{name}> attribute {key}: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element { name, attrs, ..Element::default() })
}

fn text(stack: &mut [Element], content: &str, after_root: bool) -> Result<(), String> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None if after_root => Err("text after the root element".into()),
        None => Err("text outside the root element".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_attributes_text_and_references() {
        let root = read(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi --><Response><Say loop=\"2\">Fish &amp; chips &#x263A;</Say>\
             <Dial><Sip>sip:a@b?x-a=1&amp;x-b=2</Sip></Dial><Hangup/></Response>",
        )
        .unwrap();
        assert_eq!(root.name, "Response");
        assert_eq!(root.children.len(), 3);
        assert_eq!((root.children[0].attr("loop"), root.children[0].text.as_str()), (Some("2"), "Fish & chips ☺"));
        assert_eq!(root.children[1].children[0].text, "sip:a@b?x-a=1&x-b=2");
        assert_eq!(root.children[2].name, "Hangup");
    }

    #[test]
    fn refuses_what_is_not_one_well_formed_document() {
        for (xml, reason) in [
            ("<Response><Say></Response>", "malformed"),
            ("<Response>", "ends inside"),
            ("", "no root"),
            ("<Response/><Response/>", "after the root"),
            ("<!DOCTYPE x [<!ENTITY a \"b\">]><Response/>", "DOCTYPE"),
            ("<Response>&bomb;</Response>", "unknown entity"),
            ("hello", "outside the root"),
            (&format!("{}{}", "<a>".repeat(9), "</a>".repeat(9)), "levels"),
        ] {
            let err = read(xml).unwrap_err();
            assert!(err.contains(reason), "{xml}: {err}");
        }
    }
}
