//! Values to and from Postgres. Parameters go as text (the server infers each one's type
//! from the statement) except blobs, which go in bytea's binary form; results come as text
//! and are read by their column's type (the table in docs/wit.md):
//!
//! | Postgres | `value` |
//! |---|---|
//! | `boolean` | `boolean` |
//! | `int2`, `int4`, `int8`, `oid` | `integer` |
//! | `float4`, `float8` | `real` (`NaN`, `Infinity` included) |
//! | `bytea` | `blob` (asked for in binary) |
//! | arrays of the built-in types | `text`, a JSON array |
//! | everything else | `text`, as Postgres writes it (`numeric` exact; timestamps ISO 8601 in UTC) |

use std::error::Error;

use bytes::{BufMut, BytesMut};
use postgres_protocol::IsNull;

use crate::bindings::flagon::app::sql_types::Value;

const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;

/// How the elements of an array type are written in JSON.
#[derive(Clone, Copy, PartialEq)]
enum Element {
    Bool,
    Number,
    Float,
    Json,
    Text,
}

fn array_element(oid: u32) -> Option<Element> {
    Some(match oid {
        1000 => Element::Bool,
        1005 | 1007 | 1016 | 1028 | 1231 => Element::Number,
        1021 | 1022 => Element::Float,
        199 | 3807 => Element::Json,
        // text, varchar, bpchar, name, uuid, date, time, timestamp(tz), interval, bytea, inet,
        // cidr, char
        1009 | 1015 | 1014 | 1003 | 2951 | 1182 | 1183 | 1115 | 1185 | 1187 | 1001 | 1041 | 651
        | 1002 => Element::Text,
        _ => return None,
    })
}

pub fn encode(value: &Value, buf: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
    match value {
        Value::Null => return Ok(IsNull::Yes),
        Value::Integer(i) => buf.put_slice(i.to_string().as_bytes()),
        Value::Real(f) => buf.put_slice(float_text(*f).as_bytes()),
        Value::Text(s) => {
            if s.contains('\0') {
                return Err("Postgres text cannot hold a NUL character".into());
            }
            buf.put_slice(s.as_bytes())
        }
        Value::Blob(b) => buf.put_slice(b),
        Value::Boolean(b) => buf.put_slice(if *b { b"true" } else { b"false" }),
    }
    Ok(IsNull::No)
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // Debug is the shortest text that reads back as the same f64 (`1e300`, `0.1`).
        format!("{f:?}")
    }
}

pub fn decode(oid: u32, raw: &[u8]) -> Result<Value, String> {
    let text = || std::str::from_utf8(raw).map_err(|_| "a value is not UTF-8".to_string());
    Ok(match oid {
        BOOL => Value::Boolean(raw == b"t"),
        INT2 | INT4 | INT8 | OID => Value::Integer(
            text()?
                .parse()
                .map_err(|_| format!("`{}` is not an integer", text().unwrap_or_default()))?,
        ),
        FLOAT4 | FLOAT8 => Value::Real(match text()? {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            t => t.parse().map_err(|_| format!("`{t}` is not a number"))?,
        }),
        // Asked for in binary: the bytes themselves.
        BYTEA => Value::Blob(raw.to_vec()),
        _ => match array_element(oid) {
            Some(kind) => Value::Text(array_json(text()?, kind)?),
            None => Value::Text(text()?.to_string()),
        },
    })
}

/// An array's text output (`{1,2,NULL}`, `{{"a b",c},{d,e}}`, `[0:1]={x,y}`) as JSON.
fn array_json(text: &str, kind: Element) -> Result<String, String> {
    let body = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let mut out = String::with_capacity(body.len() + 8);
    let mut chars = body.chars().peekable();
    let bad = || format!("cannot read the array `{text}`");
    // The element being read, and whether it was quoted (a quoted NULL is the text "NULL").
    let mut element = String::new();
    let mut quoted = false;
    let mut in_element = false;
    let flush = |out: &mut String, element: &mut String, quoted: bool| {
        if !quoted && element == "NULL" {
            out.push_str("null");
        } else {
            match kind {
                Element::Bool => out.push_str(if element == "t" { "true" } else { "false" }),
                // numeric's NaN and Infinity are not JSON numbers.
                Element::Number
                    if element
                        .contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
                {
                    json_string(out, element)
                }
                Element::Number => out.push_str(element),
                Element::Float if element.parse::<f64>().is_ok_and(f64::is_finite) => {
                    out.push_str(element)
                }
                Element::Json => out.push_str(element),
                Element::Float | Element::Text => json_string(out, element),
            }
        }
        element.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '{' if !in_element => out.push('['),
            '}' => {
                if in_element {
                    flush(&mut out, &mut element, quoted);
                    in_element = false;
                    quoted = false;
                }
                out.push(']');
            }
            ',' => {
                if in_element {
                    flush(&mut out, &mut element, quoted);
                    in_element = false;
                    quoted = false;
                }
                out.push(',');
            }
            '"' => {
                in_element = true;
                quoted = true;
                loop {
                    match chars.next().ok_or_else(bad)? {
                        '"' => break,
                        '\\' => element.push(chars.next().ok_or_else(bad)?),
                        c => element.push(c),
                    }
                }
            }
            c => {
                in_element = true;
                element.push(c);
            }
        }
    }
    if in_element {
        return Err(bad());
    }
    Ok(out)
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_become_json() {
        assert_eq!(
            array_json("{1,2,NULL}", Element::Number).unwrap(),
            "[1,2,null]"
        );
        assert_eq!(
            array_json(r#"{{"a b",c},{"NULL","q\"x"}}"#, Element::Text).unwrap(),
            r#"[["a b","c"],["NULL","q\"x"]]"#
        );
        assert_eq!(array_json("{t,f}", Element::Bool).unwrap(), "[true,false]");
        assert_eq!(
            array_json("{1.5,NaN,-Infinity,2e3}", Element::Number).unwrap(),
            r#"[1.5,"NaN","-Infinity",2e3]"#
        );
        assert_eq!(
            array_json("{1.5,NaN,Infinity}", Element::Float).unwrap(),
            r#"[1.5,"NaN","Infinity"]"#
        );
        assert_eq!(
            array_json("[0:1]={x,y}", Element::Text).unwrap(),
            r#"["x","y"]"#
        );
        assert_eq!(array_json("{}", Element::Text).unwrap(), "[]");
        assert_eq!(
            array_json(r#"{"{\"a\": 1}",null}"#, Element::Json).unwrap(),
            r#"[{"a": 1},null]"#
        );
    }

    #[test]
    fn floats() {
        assert_eq!(float_text(1e300), "1e300");
        assert_eq!(float_text(f64::NEG_INFINITY), "-Infinity");
    }
}
