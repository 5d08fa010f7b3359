//! Who may talk to the console. Every request passes `check`: a token when one is set
//! (`Authorization: Bearer <token>`, or `?token=` for the page and the event stream, which a
//! browser opens without headers); otherwise, on a loopback bind, a Host header that names
//! the loopback, so a web page that rebinds its own domain name to 127.0.0.1 cannot read the
//! API. Requests that could change state (anything but GET and HEAD) must carry the
//! `X-Sandflow` header, which a cross-site form cannot send, and must not come cross-site.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What a request must show.
#[derive(Clone, Debug)]
pub struct Access {
    /// The token every request must carry, if any.
    pub token: Option<String>,
    /// Bound to a loopback address without a token: the Host header must be a loopback name.
    pub loopback_only: bool,
}

pub async fn check(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if let Err((status, why)) = allowed(&access, req.method(), req.headers(), req.uri().query()) {
        let mut res = (status, why).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        return res;
    }
    next.run(req).await
}

fn allowed(
    access: &Access,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), (StatusCode, String)> {
    if let Some(token) = &access.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let given = bearer.map(str::to_string).or_else(|| query_token(query));
        match given {
            Some(g) if same(g.as_bytes(), token.as_bytes()) => {}
            Some(_) => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "wrong token: send the one `sandflow ui --token` was given, as \
                     `Authorization: Bearer <token>` or `?token=<token>`"
                        .into(),
                ))
            }
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "this console needs a token: `Authorization: Bearer <token>` or \
                     `?token=<token>`"
                        .into(),
                ))
            }
        }
    } else if access.loopback_only {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not a loopback name: this console answers only \
                     localhost, 127.0.0.1 and [::1] (start it with --token to serve others)"
                ),
            ));
        }
    }
    if method != Method::GET && method != Method::HEAD {
        if !headers.contains_key("x-sandflow") {
            return Err((
                StatusCode::FORBIDDEN,
                format!("{method} needs the X-Sandflow header (cross-site requests are refused)"),
            ));
        }
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if site == Some("cross-site") {
            return Err((
                StatusCode::FORBIDDEN,
                "cross-site requests are refused".into(),
            ));
        }
    }
    Ok(())
}

/// `token=...` of a query string, percent-decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let v = pair.strip_prefix("token=")?;
        Some(percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares in time that depends only on the lengths, so the token cannot be guessed byte by
/// byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn loopback_host(host: &str) -> bool {
    // Strip the port: `[::1]:8080`, `localhost:8080`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_token_is_checked_on_every_request() {
        let a = Access {
            token: Some("s3cret".into()),
            loopback_only: false,
        };
        let get = &Method::GET;
        assert!(allowed(
            &a,
            get,
            &headers(&[("authorization", "Bearer s3cret")]),
            None
        )
        .is_ok());
        assert!(allowed(&a, get, &headers(&[]), Some("x=1&token=s3cret")).is_ok());
        let e = allowed(
            &a,
            get,
            &headers(&[("authorization", "Bearer s3cre")]),
            None,
        );
        assert_eq!(e.unwrap_err().0, StatusCode::UNAUTHORIZED);
        let e = allowed(&a, get, &headers(&[]), Some("tok=s3cret"));
        assert_eq!(e.unwrap_err().0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_loopback_console_answers_only_loopback_names() {
        let a = Access {
            token: None,
            loopback_only: true,
        };
        for ok in ["127.0.0.1:8080", "localhost:1", "[::1]:80", "LOCALHOST"] {
            let h = HeaderMap::from_iter([(header::HOST, ok.parse().unwrap())]);
            assert!(allowed(&a, &Method::GET, &h, None).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", ""] {
            let h = HeaderMap::from_iter([(header::HOST, bad.parse().unwrap())]);
            let e = allowed(&a, &Method::GET, &h, None).unwrap_err();
            assert_eq!(e.0, StatusCode::FORBIDDEN, "{bad}");
        }
    }

    #[test]
    fn state_changes_need_the_custom_header_and_not_cross_site() {
        let a = Access {
            token: None,
            loopback_only: false,
        };
        let post = &Method::POST;
        assert_eq!(
            allowed(&a, post, &headers(&[]), None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert!(allowed(&a, post, &headers(&[("x-sandflow", "1")]), None).is_ok());
        let h = headers(&[("x-sandflow", "1"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(
            allowed(&a, post, &h, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(query_token(Some("token=a%2Bb+c")), Some("a+b c".into()));
        assert_eq!(query_token(Some("a=1")), None);
    }
}
