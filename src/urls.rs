//! The server's base URL and the REST URLs joined below it.
//!
//! Many servers live under a context path (`https://git.acme.com/bitbucket`). Joining with a
//! string that starts with `/` would drop that path, so URLs are built segment by segment, each
//! segment percent-encoded (project keys like `~JDOE`, slugs with dots).

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

    /// `{base}/rest/api/1.0/{segments...}?{query}`.
    pub fn api(&self, segments: &[&str], query: &[(&str, &str)]) -> String {
        self.join(&["rest", "api", "1.0"], segments, query)
    }

    /// `{base}/{prefix...}/{segments...}?{query}`, keeping any context path of the base.
    pub fn join(&self, prefix: &[&str], segments: &[&str], query: &[(&str, &str)]) -> String {
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(prefix.iter().chain(segments));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url.into()
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
                b.api(&["projects"], &[("start", "0"), ("limit", "25")]),
                "https://git.acme.com/bitbucket/rest/api/1.0/projects?start=0&limit=25"
            );
        }
    }

    #[test]
    fn root_base_and_port() {
        let b = BaseUrl::parse("http://127.0.0.1:7990").unwrap();
        assert_eq!(
            b.api(&["application-properties"], &[]),
            "http://127.0.0.1:7990/rest/api/1.0/application-properties"
        );
    }

    #[test]
    fn segments_are_encoded() {
        let b = BaseUrl::parse("https://h/bb").unwrap();
        assert_eq!(
            b.api(&["projects", "~JDOE", "repos", "a b/c"], &[]),
            "https://h/bb/rest/api/1.0/projects/~JDOE/repos/a%20b%2Fc"
        );
        assert_eq!(
            b.api(&["x"], &[("q", "a&b=c")]),
            "https://h/bb/rest/api/1.0/x?q=a%26b%3Dc"
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
