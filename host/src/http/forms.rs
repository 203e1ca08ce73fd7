//! Form bodies decoded by the host: `application/x-www-form-urlencoded` and
//! `multipart/form-data`, within limits on the number of fields and the size of text fields.
//! (The whole body is already bounded by the route's `max_body`.)

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// One field of a decoded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    pub name: String,
    /// The text value; empty for file fields.
    pub value: String,
    pub file: Option<UploadedFile>,
}

/// A file uploaded in a multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The file name the browser sent (untrusted: never use it as a path).
    pub filename: String,
    /// The part's declared `Content-Type` (untrusted), `application/octet-stream` if none.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Form limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    pub max_parts: usize,
    pub max_field: usize,
}

/// Why a form body was refused (a 400 for the client).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("the form has more than {0} fields")]
    TooManyParts(usize),
    #[error("form field `{name}` is larger than {max} bytes")]
    FieldTooLarge { name: String, max: usize },
    #[error("form field `{0}` is not valid UTF-8")]
    NotUtf8(String),
    #[error("malformed multipart body: {0}")]
    Multipart(String),
}

/// The kind of form a request carries, from its `Content-Type`.
#[derive(Debug, PartialEq, Eq)]
pub enum FormKind {
    None,
    UrlEncoded,
    Multipart(String),
}

pub fn kind(headers: &HeaderMap) -> FormKind {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return FormKind::None;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        FormKind::UrlEncoded
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        match multer::parse_boundary(ct) {
            Ok(b) => FormKind::Multipart(b),
            // A multipart body without a boundary cannot be read; treat it as malformed.
            Err(_) => FormKind::Multipart(String::new()),
        }
    } else {
        FormKind::None
    }
}

/// Decode a urlencoded body. Invalid UTF-8 after percent-decoding is refused rather than
/// replaced, so a guest never sees a value the client did not send.
pub fn parse_urlencoded(body: &[u8], limits: FormLimits) -> Result<Vec<FormField>, FormError> {
    let decode = |raw: &[u8]| -> Option<String> {
        let plus: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
        String::from_utf8(bytes).ok()
    };
    let mut out = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if out.len() == limits.max_parts {
            return Err(FormError::TooManyParts(limits.max_parts));
        }
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode(raw_name)
            .ok_or_else(|| FormError::NotUtf8(String::from_utf8_lossy(raw_name).into_owned()))?;
        if raw_value.len() > limits.max_field * 3 {
            return Err(FormError::FieldTooLarge {
                name,
                max: limits.max_field,
            });
        }
        let value = decode(raw_value).ok_or_else(|| FormError::NotUtf8(name.clone()))?;
        if value.len() > limits.max_field {
            return Err(FormError::FieldTooLarge {
                name,
                max: limits.max_field,
            });
        }
        out.push(FormField {
            name,
            value,
            file: None,
        });
    }
    Ok(out)
}

/// Decode a multipart body.
pub async fn parse_multipart(
    body: Bytes,
    boundary: &str,
    limits: FormLimits,
) -> Result<Vec<FormField>, FormError> {
    if boundary.is_empty() {
        return Err(FormError::Multipart("no boundary in Content-Type".into()));
    }
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(FormError::Multipart(e.to_string())),
        };
        if out.len() == limits.max_parts {
            return Err(FormError::TooManyParts(limits.max_parts));
        }
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field
            .content_type()
            .map(|m| m.essence_str().to_string())
            .unwrap_or_else(|| "application/octet-stream".into());
        let data = field
            .bytes()
            .await
            .map_err(|e| FormError::Multipart(e.to_string()))?;
        match filename {
            Some(filename) => out.push(FormField {
                name,
                value: String::new(),
                file: Some(UploadedFile {
                    filename,
                    content_type,
                    data: Vec::from(data),
                }),
            }),
            None => {
                if data.len() > limits.max_field {
                    return Err(FormError::FieldTooLarge {
                        name,
                        max: limits.max_field,
                    });
                }
                let value = String::from_utf8(Vec::from(data))
                    .map_err(|_| FormError::NotUtf8(name.clone()))?;
                out.push(FormField {
                    name,
                    value,
                    file: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FormLimits = FormLimits {
        max_parts: 3,
        max_field: 10,
    };

    #[test]
    fn urlencoded() {
        let f = parse_urlencoded(b"a=1&b=x+y%21&c=%C3%A9", LIMITS).unwrap();
        let pairs: Vec<_> = f
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "1"), ("b", "x y!"), ("c", "é")]);
        assert!(matches!(
            parse_urlencoded(b"a=1&b=2&c=3&d=4", LIMITS),
            Err(FormError::TooManyParts(3))
        ));
        assert!(matches!(
            parse_urlencoded(b"a=12345678901", LIMITS),
            Err(FormError::FieldTooLarge { .. })
        ));
        assert!(matches!(
            parse_urlencoded(b"a=%C0%AE", LIMITS),
            Err(FormError::NotUtf8(_))
        ));
    }

    #[tokio::test]
    async fn multipart() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body longer than ten\r\n--XyZ--\r\n";
        let f = parse_multipart(Bytes::from(body), "XyZ", LIMITS)
            .await
            .unwrap();
        assert_eq!(f[0].name, "t");
        assert_eq!(f[0].value, "hello");
        let file = f[1].file.as_ref().unwrap();
        assert_eq!(file.filename, "a.txt");
        assert_eq!(file.content_type, "text/plain");
        assert_eq!(file.data, b"file body longer than ten");

        let big = body.replace("hello", "hello world!");
        assert!(matches!(
            parse_multipart(Bytes::from(big), "XyZ", LIMITS).await,
            Err(FormError::FieldTooLarge { .. })
        ));
        assert!(matches!(
            parse_multipart(Bytes::from("garbage"), "XyZ", LIMITS).await,
            Err(FormError::Multipart(_))
        ));
    }
}
