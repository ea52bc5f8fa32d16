//! The server's base URL and the REST URLs joined below it.
//!
//! Many servers live under a context path (`https://git.acme.com/bitbucket`). Joining with a
//! string that starts with `/` would drop that path, so URLs are built segment by segment, each
//! segment percent-encoded (project keys like `~JDOE`, slugs with dots).
//!
//! A segment that is `.` or `..` cannot be sent: the URL standard resolves it (and its encoded
//! forms `%2E`, `%2E%2E`, which every WHATWG parser on the way, the host's included, decodes as
//! dots) against the segments before it, so a repository slug `..` would address the project
//! instead of the repository. Such segments, and empty ones, are refused as `invalid-config`.

use crate::error::ConnectorError;
use url::Url;

/// A validated base URL (http or https, a host, no query or fragment, no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
}

impl BaseUrl {
    /// Validates a base URL as given by the user, with or without a trailing slash.
    pub fn parse(raw: &str) -> Result<Self, ConnectorError> {
        let bad = |why: &str| ConnectorError::InvalidConfig(format!("base URL {raw:?}: {why}"));
        let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(bad("must start with https:// or http://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials (the host adds them)"));
        }
        Ok(Self { url })
    }

    /// The base URL as given, normalised.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// `{base}/rest/api/1.0/{segments...}?{query}`; see [`BaseUrl::join`].
    pub fn api(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String, ConnectorError> {
        self.join(&["rest", "api", "1.0"], segments, query)
    }

    /// `{base}/rest/build-status/1.0/{segments...}?{query}`: the build-status resource, the one
    /// that lists a commit's builds on every server version (see `BITBUCKET.md`).
    pub fn build_status(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<String, ConnectorError> {
        self.join(&["rest", "build-status", "1.0"], segments, query)
    }

    /// `{base}/{prefix...}/{segments...}?{query}`, keeping any context path of the base. A
    /// segment that is empty, `.` or `..` would not reach the server as itself (see the module
    /// documentation) and is refused.
    pub fn join(
        &self,
        prefix: &[&str],
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<String, ConnectorError> {
        if let Some(bad) = prefix
            .iter()
            .chain(segments)
            .find(|s| matches!(**s, "" | "." | ".."))
        {
            return Err(ConnectorError::InvalidConfig(format!(
                "{bad:?} cannot be a project key, repository slug or other URL path segment: {}",
                if bad.is_empty() {
                    "it is empty"
                } else {
                    "URLs resolve it as a relative path step, so the request would go elsewhere"
                }
            )));
        }
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(prefix.iter().chain(segments));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_path_survives_with_or_without_trailing_slash() {
        for raw in [
            "https://git.acme.com/bitbucket",
            "https://git.acme.com/bitbucket/",
        ] {
            let b = BaseUrl::parse(raw).unwrap();
            assert_eq!(
                b.api(&["projects"], &[("start", "0"), ("limit", "25")])
                    .unwrap(),
                "https://git.acme.com/bitbucket/rest/api/1.0/projects?start=0&limit=25"
            );
        }
    }

    #[test]
    fn root_base_and_port() {
        let b = BaseUrl::parse("http://127.0.0.1:7990").unwrap();
        assert_eq!(
            b.api(&["application-properties"], &[]).unwrap(),
            "http://127.0.0.1:7990/rest/api/1.0/application-properties"
        );
    }

    #[test]
    fn segments_are_encoded() {
        let b = BaseUrl::parse("https://h/bb").unwrap();
        assert_eq!(
            b.api(&["projects", "~JDOE", "repos", "a b/c"], &[])
                .unwrap(),
            "https://h/bb/rest/api/1.0/projects/~JDOE/repos/a%20b%2Fc"
        );
        assert_eq!(
            b.api(&["x"], &[("q", "a&b=c")]).unwrap(),
            "https://h/bb/rest/api/1.0/x?q=a%26b%3Dc"
        );
    }

    #[test]
    fn dot_segments_are_refused_because_no_encoding_survives() {
        let b = BaseUrl::parse("https://h/bb").unwrap();
        for (key, slug) in [
            ("..", "api"),
            (".", "api"),
            ("PLAT", ".."),
            ("PLAT", "."),
            ("", "a"),
        ] {
            let e = b
                .api(&["projects", key, "repos", slug, "pull-requests"], &[])
                .unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{key}/{slug}");
            assert!(
                e.to_string()
                    .contains(&format!("{:?}", if key == "PLAT" { slug } else { key })),
                "{e}"
            );
        }
        // Why not %2E: the host parses the URL it is given, and the URL standard reads the
        // encoded forms as dot segments and resolves them, so the request would go elsewhere.
        for encoded in ["%2E", "%2e", "%2E%2E", ".%2e", "%2e."] {
            let sent =
                format!("https://h/bb/rest/api/1.0/projects/PLAT/repos/{encoded}/pull-requests");
            let path = url::Url::parse(&sent).unwrap().path().to_owned();
            let segments: Vec<&str> = path.split('/').skip(1).collect();
            assert!(
                segments.len() < 9 && !segments.iter().any(|s| s.eq_ignore_ascii_case(encoded)),
                "{encoded} survived as {path}"
            );
        }
        // Dots that are not a whole segment, and literal percent signs, stay what they are.
        assert_eq!(
            b.api(&["projects", "P", "repos", "..."], &[]).unwrap(),
            "https://h/bb/rest/api/1.0/projects/P/repos/..."
        );
        assert_eq!(
            b.api(&["projects", "P", "repos", ".x"], &[]).unwrap(),
            "https://h/bb/rest/api/1.0/projects/P/repos/.x"
        );
        let url = b.api(&["projects", "P", "repos", "%2E%2E"], &[]).unwrap();
        assert_eq!(url, "https://h/bb/rest/api/1.0/projects/P/repos/%252E%252E");
        assert_eq!(
            url::Url::parse(&url).unwrap().path(),
            "/bb/rest/api/1.0/projects/P/repos/%252E%252E"
        );
    }

    #[test]
    fn rejects_unusable_base_urls() {
        for raw in [
            "",
            "git.acme.com",
            "ftp://h/x",
            "https://h/x?a=1",
            "https://h/#f",
            "https://u:p@h/",
            "file:///etc",
        ] {
            let e = BaseUrl::parse(raw).unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{raw}");
        }
    }
}
