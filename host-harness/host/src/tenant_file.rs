//! A tenant described as data: a TOML or JSON file with the server, where its credentials are,
//! and any limit that differs from the defaults, as Extism's manifest describes a plug-in.
//!
//! ```toml
//! id = "acme"
//! base_url = "https://git.acme.com/bitbucket"
//! ca_bundle = "/etc/bbdc/acme-ca.pem"   # optional
//! page_size = 100                       # optional
//!
//! [credentials]                         # a reference, never the secret itself
//! token_env = "ACME_BITBUCKET_TOKEN"    # or: token_file, or username + password_env/password_file
//!
//! [limits]                              # each optional
//! memory_bytes = 268435456
//! deadline = "5m"
//!
//! [timeouts]
//! connect = "10s"
//!
//! [http_policy]                         # each optional
//! burst = 60                            # the account's budget; without it and per_second,
//! per_second = 5                        # the server's is read ("unlimited": adapt to 429s)
//! max_attempts = 6
//! max_wait = "15m"
//! ```
//!
//! Durations are written as `humantime` spans (`90s`, `5m`, `1h 30m`). Unknown keys are refused,
//! so a misspelt limit is an error rather than a silent default, and secrets cannot be written
//! inline: only the name of an environment variable or of a file holding them.

use crate::policy::HttpPolicy;
use crate::tenant::config::{Credentials, Limits, TenantConfig, Timeouts};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a tenant file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TenantFileError {
    /// The file could not be read.
    #[error("cannot read tenant file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid tenant description.
    #[error("tenant file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line or field where the parser can tell.
        message: String,
    },
    /// A credential the file refers to is missing.
    #[error("tenant {tenant}: {message}")]
    Credentials {
        /// The tenant id.
        tenant: String,
        /// Which reference could not be resolved (never the secret).
        message: String,
    },
}

/// Where a tenant's credentials come from. Exactly one scheme: a token, or a user name with a
/// password; each secret from an environment variable or a file (first line, trimmed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRef {
    /// Environment variable holding an HTTP access token (sent as Bearer).
    pub token_env: Option<String>,
    /// File holding an HTTP access token.
    pub token_file: Option<PathBuf>,
    /// User name for Basic authentication.
    pub username: Option<String>,
    /// Environment variable holding the password (or token) for `username`.
    pub password_env: Option<String>,
    /// File holding the password (or token) for `username`.
    pub password_file: Option<PathBuf>,
}

/// The file's shape. Every section but the server's is optional and defaults field by field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Stable tenant id (namespaces its storage); `default` when left out.
    #[serde(default = "default_id")]
    pub id: String,
    /// The server's base URL, with any context path.
    pub base_url: String,
    /// Where the credentials are (no section: anonymous access).
    #[serde(default)]
    pub credentials: CredentialsRef,
    /// A PEM bundle of extra CA certificates to trust.
    pub ca_bundle: Option<PathBuf>,
    /// Items per list request.
    pub page_size: Option<u32>,
    /// Sandbox limits.
    #[serde(default)]
    pub limits: Limits,
    /// HTTP timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Rate limit and retries.
    #[serde(default)]
    pub http_policy: HttpPolicy,
}

fn default_id() -> String {
    "default".into()
}

/// A tenant id as messages show it: quoted, control characters escaped (`"a\u{0}b"`), at most
/// 80 characters.
fn shown_id(id: &str) -> String {
    let short: String = id.chars().take(80).collect();
    let more = if short.len() < id.len() { "…" } else { "" };
    format!("{short:?}{more}")
}

impl TenantFile {
    /// Reads a tenant file: JSON when its name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, TenantFileError> {
        read_with(path, Self::parse)
    }

    /// Parses a tenant description from TOML (`json` false) or JSON text.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        let file: Self = from_text(text, json)?;
        file.check()
            .map_err(|e| format!("tenant {}: {e}", shown_id(&file.id)))?;
        Ok(file)
    }

    /// Reads a file of one tenant or of many: a top-level `tenants` list (`[[tenants]]` in
    /// TOML), each entry shaped as a one-tenant file, each with its own `id`.
    pub fn load_all(path: &Path) -> Result<Vec<Self>, TenantFileError> {
        read_with(path, Self::parse_all)
    }

    /// Parses a file of one tenant or of many (see [`TenantFile::load_all`]). Two tenants with
    /// one id are refused: the id namespaces each tenant's state and records.
    pub fn parse_all(text: &str, json: bool) -> Result<Vec<Self>, String> {
        /// A file of many tenants.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Many {
            tenants: Vec<TenantFile>,
        }
        let many = if json {
            serde_json::from_str::<serde_json::Value>(text)
                .map(|v| v.get("tenants").is_some())
                .unwrap_or(false)
        } else {
            toml::from_str::<toml::Table>(text)
                .map(|t| t.contains_key("tenants"))
                .unwrap_or(false)
        };
        if !many {
            return Self::parse(text, json).map(|one| vec![one]);
        }
        let Many { tenants } = from_text(text, json)?;
        if tenants.is_empty() {
            return Err("tenants: the list is empty".into());
        }
        let mut ids = std::collections::HashSet::new();
        for (i, t) in tenants.iter().enumerate() {
            t.check()
                .map_err(|e| format!("tenants entry {} (id {}): {e}", i + 1, shown_id(&t.id)))?;
            if !ids.insert(t.id.as_str()) {
                return Err(format!(
                    "tenants entry {} (id {}): the id is given twice",
                    i + 1,
                    shown_id(&t.id)
                ));
            }
        }
        Ok(tenants)
    }

    /// What the types cannot say.
    fn check(&self) -> Result<(), String> {
        if let Some(problem) = crate::tenant::config::tenant_id_problem(&self.id) {
            return Err(problem);
        }
        if self.http_policy.max_attempts == 0 {
            return Err("http_policy.max_attempts must be at least 1".into());
        }
        Ok(())
    }

    /// The tenant's configuration, with its credentials read from where the file points.
    pub fn resolve(&self) -> Result<TenantConfig, TenantFileError> {
        let fail = |message: String| TenantFileError::Credentials {
            tenant: self.id.clone(),
            message,
        };
        let c = &self.credentials;
        let secret = |env: &Option<String>, file: &Option<PathBuf>, what: &str| match (env, file) {
            (Some(_), Some(_)) => Err(format!("give {what}_env or {what}_file, not both")),
            (Some(var), None) => secret_from_env(var).map(Some),
            (None, Some(file)) => from_file(file).map(Some),
            (None, None) => Ok(None),
        };
        let has_token = c.token_env.is_some() || c.token_file.is_some();
        let has_password = c.password_env.is_some() || c.password_file.is_some();
        let credentials = match (has_token, &c.username, has_password) {
            (true, None, false) => match secret(&c.token_env, &c.token_file, "token") {
                Ok(Some(token)) => Credentials::Bearer(token),
                Ok(None) => Credentials::None,
                Err(e) => return Err(fail(e)),
            },
            (false, Some(user), true) => {
                match secret(&c.password_env, &c.password_file, "password") {
                    Ok(password) => Credentials::Basic {
                        username: user.clone(),
                        password: password.unwrap_or_default(),
                    },
                    Err(e) => return Err(fail(e)),
                }
            }
            (false, None, false) => Credentials::None,
            (true, _, _) => return Err(fail("give a token or a username, not both".into())),
            (false, Some(_), false) => {
                return Err(fail("username needs password_env or password_file".into()));
            }
            (false, None, true) => return Err(fail("a password needs a username".into())),
        };
        let mut config = TenantConfig::new(self.id.clone(), self.base_url.clone(), credentials);
        config.ca_bundle = self.ca_bundle.clone();
        config.page_size = self.page_size;
        config.limits = self.limits.clone();
        config.timeouts = self.timeouts.clone();
        config.http_policy = self.http_policy.clone();
        Ok(config)
    }
}

/// Reads the file at `path` and parses it with `parse` (as JSON when its name ends in `.json`,
/// TOML otherwise), naming the file in either failure.
fn read_with<T>(
    path: &Path,
    parse: impl FnOnce(&str, bool) -> Result<T, String>,
) -> Result<T, TenantFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TenantFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&text, json).map_err(|message| TenantFileError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Deserialises TOML (`json` false) or JSON text. TOML errors name the line and the problem
/// only: the parser's own rendering quotes the offending line, which could be a secret written
/// inline by mistake.
fn from_text<T: serde::de::DeserializeOwned>(text: &str, json: bool) -> Result<T, String> {
    if json {
        return serde_json::from_str(text).map_err(|e| e.to_string());
    }
    toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => {
            let before = text.as_bytes().get(..span.start).unwrap_or_default();
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_owned(),
    })
}

/// A secret from environment variable `var`: refused when it is not set, or empty or only
/// whitespace (a variable set by mistake). The one rule for every secret read from the
/// environment, by tenant files and by the command line's `--*-env` flags alike.
pub fn secret_from_env(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(format!("environment variable {var} is empty")),
        Err(_) => Err(format!("environment variable {var} is not set")),
    }
}

fn from_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match text.lines().next().map(str::trim) {
        Some(secret) if !secret.is_empty() => Ok(secret.to_owned()),
        _ => Err(format!("{} is empty", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_file_lists_many_tenants_each_with_its_own_server_credentials_and_budget() {
        let text = r#"
            [[tenants]]
            id = "acme"
            base_url = "https://git.acme.com/bitbucket"
            [tenants.credentials]
            token_env = "ACME_TOKEN"
            [tenants.http_policy]
            per_second = 10

            [[tenants]]
            id = "globex"
            base_url = "https://bitbucket.globex.io"
            [tenants.credentials]
            username = "svc"
            password_file = "/run/secrets/globex"
            "#;
        let all = TenantFile::parse_all(text, false).unwrap();
        let ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["acme", "globex"]);
        assert_eq!(all[0].http_policy.per_second, 10.0);
        assert_eq!(
            all[1].http_policy.per_second,
            HttpPolicy::default().per_second
        );
        assert_eq!(all[1].credentials.username.as_deref(), Some("svc"));
        // The same in JSON, and a one-tenant file is a list of one.
        let json = r#"{"tenants": [{"id": "a", "base_url": "https://a"}, {"id": "b", "base_url": "https://b"}]}"#;
        assert_eq!(TenantFile::parse_all(json, true).unwrap().len(), 2);
        let one =
            TenantFile::parse_all("id = \"solo\"\nbase_url = \"https://h\"\n", false).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "solo");
    }

    /// A tenant id the database cannot store (NUL), or that a terminal would interpret, is
    /// refused when the file is read, naming the entry by its position and its id, escaped:
    /// one such tenant would otherwise stall every tenant of the worker at the database.
    #[test]
    fn a_tenant_id_with_a_control_character_is_refused_by_position_and_escaped() {
        let toml = "[[tenants]]\nid = \"acme\"\nbase_url = \"https://a\"\n[[tenants]]\nid = \"glo\\u0000bex\"\nbase_url = \"https://b\"\n";
        let e = TenantFile::parse_all(toml, false).unwrap_err();
        assert!(e.contains("tenants entry 2"), "{e}");
        assert!(
            e.contains(r#""glo\0bex""#) || e.contains(r#""glo\u{0}bex""#),
            "{e}"
        );
        assert!(e.contains("U+0000"), "{e}");
        assert!(!e.contains('\0'), "the message carries no raw NUL: {e}");
        let json = r#"{"tenants": [{"id": "a\u001b[31m", "base_url": "https://a"}]}"#;
        let e = TenantFile::parse_all(json, true).unwrap_err();
        assert!(e.contains("tenants entry 1") && e.contains("U+001B"), "{e}");
        assert!(!e.contains('\u{1b}'), "{e}");
        // One tenant per file: the same check.
        let e = TenantFile::parse("id = \"a\\tb\"\nbase_url = \"https://a\"\n", false).unwrap_err();
        assert!(e.contains("U+0009"), "{e}");
        for bad in ["", &"x".repeat(201)] {
            let text = format!("id = \"{bad}\"\nbase_url = \"https://a\"\n");
            assert!(TenantFile::parse(&text, false).is_err(), "{bad:?}");
        }
        // Printable text of any script is an id.
        let ok = TenantFile::parse("id = \"acmé-東京_1\"\nbase_url = \"https://a\"\n", false);
        assert_eq!(ok.map(|t| t.id).as_deref(), Ok("acmé-東京_1"));
    }

    #[test]
    fn a_many_tenant_file_refuses_a_repeated_id_an_inline_secret_and_an_empty_list() {
        let twice = "[[tenants]]\nid = \"a\"\nbase_url = \"https://a\"\n[[tenants]]\nid = \"a\"\nbase_url = \"https://b\"\n";
        assert!(
            TenantFile::parse_all(twice, false)
                .unwrap_err()
                .contains("twice")
        );
        let inline = "[[tenants]]\nid = \"a\"\nbase_url = \"https://a\"\n[tenants.credentials]\ntoken = \"s3cret\"\n";
        let e = TenantFile::parse_all(inline, false).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(TenantFile::parse_all("tenants = []\n", false).is_err());
    }

    #[test]
    fn a_toml_file_sets_what_it_names_and_keeps_every_other_default() {
        let file = TenantFile::parse(
            r#"
            id = "acme"
            base_url = "https://git.acme.com/bitbucket"
            page_size = 100
            [limits]
            deadline = "90s"
            [timeouts]
            connect = "3s"
            [http_policy]
            per_second = 50
            max_wait = "2m"
            "#,
            false,
        )
        .unwrap();
        let config = file.resolve().unwrap();
        assert_eq!(config.id, "acme");
        assert_eq!(config.page_size, Some(100));
        assert_eq!(config.limits.deadline, Duration::from_secs(90));
        assert_eq!(config.limits.memory_bytes, Limits::default().memory_bytes);
        assert_eq!(config.timeouts.connect, Duration::from_secs(3));
        assert_eq!(config.timeouts.read, Timeouts::default().read);
        assert_eq!(config.http_policy.per_second, 50.0);
        assert_eq!(config.http_policy.max_wait, Duration::from_secs(120));
        assert_eq!(
            config.http_policy.max_attempts,
            HttpPolicy::default().max_attempts
        );
        assert!(matches!(config.credentials, Credentials::None));
    }

    #[test]
    fn a_toml_tenant_can_lift_the_client_side_limit() {
        let file = TenantFile::parse(
            "base_url = \"https://h\"\n[http_policy]\nper_second = \"unlimited\"\n",
            false,
        )
        .unwrap();
        assert_eq!(file.http_policy.ceiling(), f64::INFINITY);
        let file = TenantFile::parse(
            "base_url = \"https://h\"\n[http_policy]\nper_second = 40\nburst = 400\n",
            false,
        )
        .unwrap();
        assert_eq!(
            (file.http_policy.ceiling(), file.http_policy.burst),
            (40.0, Some(400.0))
        );
        assert!(file.http_policy.told);
        let untold = TenantFile::parse(
            "base_url = \"https://h\"\n[http_policy]\nmax_attempts = 3\n",
            false,
        )
        .unwrap();
        assert!(!untold.http_policy.told, "no budget named: none told");
        assert_eq!(untold.http_policy.max_attempts, 3);
        let slow = TenantFile::parse(
            "base_url = \"https://h\"\n[http_policy]\nper_second = \"fast\"\n",
            false,
        );
        assert!(
            slow.is_err(),
            "a rate that is not a number or unlimited is refused"
        );
    }

    #[test]
    fn json_describes_the_same_tenant() {
        let file = TenantFile::parse(
            r#"{"base_url": "https://h", "limits": {"deadline": "1m"}, "http_policy": {"burst": null}}"#,
            true,
        )
        .unwrap();
        assert_eq!(file.id, "default");
        assert_eq!(file.limits.deadline, Duration::from_secs(60));
        assert!(
            !file.http_policy.told,
            "a null burst tells no budget: the server's is read"
        );
    }

    #[test]
    fn a_misspelt_key_or_an_inline_secret_is_refused() {
        let typo = TenantFile::parse(
            "base_url = \"https://h\"\n[limits]\ndeadlin = \"1m\"\n",
            false,
        )
        .unwrap_err();
        assert!(typo.contains("deadlin"), "{typo}");
        let inline = TenantFile::parse(
            "base_url = \"https://h\"\n[credentials]\ntoken = \"s3cret\"\n",
            false,
        )
        .unwrap_err();
        assert!(inline.contains("token"), "{inline}");
        assert!(
            !inline.contains("s3cret"),
            "the secret is not echoed: {inline}"
        );
        let zero = TenantFile::parse(
            "base_url = \"https://h\"\n[http_policy]\nmax_attempts = 0\n",
            false,
        )
        .unwrap_err();
        assert!(zero.contains("max_attempts"), "{zero}");
    }

    #[test]
    fn credentials_come_from_the_file_or_variable_named() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-from-file\n").unwrap();
        let file = TenantFile::parse(
            &format!(
                "base_url = \"https://h\"\n[credentials]\ntoken_file = {:?}\n",
                token.display().to_string()
            ),
            false,
        )
        .unwrap();
        match file.resolve().unwrap().credentials {
            Credentials::Bearer(t) => assert_eq!(t, "tok-from-file"),
            other => panic!("{other:?}"),
        }
        let missing = TenantFile::parse(
            "base_url = \"https://h\"\n[credentials]\nusername = \"u\"\npassword_env = \"BBDC_TEST_SURELY_UNSET_VAR\"\n",
            false,
        )
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("BBDC_TEST_SURELY_UNSET_VAR is not set"),
            "{missing}"
        );
        let both = TenantFile::parse(
            "base_url = \"https://h\"\n[credentials]\ntoken_env = \"A\"\nusername = \"u\"\n",
            false,
        )
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(both.contains("not both"), "{both}");
    }
}
