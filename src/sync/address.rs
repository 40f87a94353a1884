//! The sync server's address: whether the device may send the password, the sign-in tokens and
//! the households' personal data to it. An `https` address always may; plain `http` only to this
//! computer itself (the loopback: `127.0.0.0/8`, `::1`, `localhost`), or to a host the user has
//! explicitly allowed (on the sign-in screen or in Settings) after being told the risk. Anything else is refused with the
//! reason in both languages, as the error of the `server_url` field.

use std::net::IpAddr;

use url::{Host, Url};

use crate::FieldError;

/// The field the address errors are reported on.
pub const SERVER_URL_FIELD: &str = "server_url";

/// The code of an address refused because it is plain `http` to a host that is neither this
/// computer nor allowed by the user.
pub const INSECURE_ADDRESS: &str = "insecure_address";

/// The code of an address that is not an `http://` or `https://` address at all.
pub const INVALID_URL: &str = "invalid_url";

/// The code of an address carrying a user name or password.
pub const CREDENTIALS_IN_ADDRESS: &str = "credentials_in_address";

/// The code of a host that cannot be allowed (not a bare host name or IP address).
pub const INVALID_HOST: &str = "invalid_host";

fn invalid_url() -> FieldError {
    FieldError::new(SERVER_URL_FIELD, INVALID_URL, "地址应以 http:// 或 https:// 开头", "must start with http:// or https://")
}

fn insecure(host: &str) -> FieldError {
    FieldError::new(
        SERVER_URL_FIELD,
        INSECURE_ADDRESS,
        format!(
            "{host} 的地址未加密（http）：密码、登录凭证和农户的个人信息会以明文经过网络，途中任何人（例如乡镇共用的 Wi-Fi 上的人）都能看到。请使用 https:// 开头的地址；确需使用时，可在此处或设置中允许此地址使用 http。"
        ),
        format!(
            "the address of {host} is not encrypted (http): the password, the sign-in tokens and the households' personal data would cross the network readable by anyone on the way (e.g. on the township's shared Wi-Fi). Use an https:// address; if you must use this one, allow http for it here or in Settings."
        ),
    )
}

/// Checks the sync server's address and returns it in its normal form (lower-case scheme and
/// host, no default port, no trailing slash).
///
/// `https` is always accepted; `http` only when the host is this computer (see [`is_loopback`])
/// or is one of `insecure_hosts`, the hosts the user allowed plain `http` for (compared in their
/// normal form, see [`normalize_host`]). Otherwise the error is on the `server_url` field, with
/// the code [`INSECURE_ADDRESS`] and the reason; an address that is not `http` or `https`, or
/// has no host, has [`INVALID_URL`], and one with a user name or password in it
/// [`CREDENTIALS_IN_ADDRESS`] (the account's name and password have their own fields, and the
/// address is kept unencrypted in the settings).
pub fn check_server_address(address: &str, insecure_hosts: &[String]) -> Result<String, FieldError> {
    let url = Url::parse(address.trim()).map_err(|_| invalid_url())?;
    let host = match url.host() {
        Some(host) if !url.cannot_be_a_base() => host,
        _ => return Err(invalid_url()),
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            let name = url.host_str().unwrap_or_default();
            let allowed = insecure_hosts.iter().any(|allowed| normalize_host(allowed).is_ok_and(|allowed| allowed == name));
            if !is_loopback(&host) && !allowed {
                return Err(insecure(name));
            }
        }
        _ => return Err(invalid_url()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            SERVER_URL_FIELD,
            CREDENTIALS_IN_ADDRESS,
            "地址中不能包含用户名或密码：请填在下面的用户名和密码栏",
            "must not contain a user name or password: enter them in their own fields",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether `host` is this computer: `localhost` (or a name under `.localhost`), an address in
/// `127.0.0.0/8`, or `::1`. A name merely starting with `localhost` (`localhost.example.com`)
/// is another computer.
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(address) => address.is_loopback(),
        Host::Ipv6(address) => address.is_loopback() || address.to_ipv4_mapped().is_some_and(|mapped| mapped.is_loopback()),
    }
}

/// The host of `address` in its normal form (as [`normalize_host`] gives it), if it has one.
pub fn address_host(address: &str) -> Option<String> {
    Url::parse(address.trim()).ok().and_then(|url| url.host_str().map(str::to_owned))
}

/// A host the user allows plain `http` for, in its normal form: a lower-case name, an IPv4
/// address, or an IPv6 address in brackets (`[fd00::1]`). Anything else (a port, a path, a user
/// name, an empty text) is refused with the code [`INVALID_HOST`] on the `host` field.
pub fn normalize_host(host: &str) -> Result<String, FieldError> {
    let refused = || FieldError::new("host", INVALID_HOST, "请填写服务器名称或 IP 地址（不含 http:// 和端口）", "must be a server name or IP address (without http:// or a port)");
    let host = host.trim();
    // A bare IPv6 address is accepted without its brackets too.
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(address)) => format!("[{address}]"),
        _ => host.to_owned(),
    };
    let stray_colon = !host.starts_with('[') && host.contains(':');
    if host.is_empty() || stray_colon || host.contains(['/', '\\', '@', '?', '#']) {
        return Err(refused());
    }
    let url = Url::parse(&format!("http://{host}")).map_err(|_| refused())?;
    if url.port().is_some() || url.path() != "/" {
        return Err(refused());
    }
    url.host_str().map(str::to_owned).ok_or_else(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(address: &str, allowed: &[&str]) -> String {
        let allowed: Vec<String> = allowed.iter().map(|host| host.to_string()).collect();
        check_server_address(address, &allowed).map(|_| "ok".to_owned()).unwrap_or_else(|error| {
            assert_eq!(error.field, "server_url");
            error.code
        })
    }

    #[test]
    fn https_is_always_accepted_in_its_normal_form() {
        assert_eq!(check_server_address("https://sync.example.cn", &[]).unwrap(), "https://sync.example.cn");
        assert_eq!(check_server_address("  HTTPS://Sync.Example.CN:443/furrow/ ", &[]).unwrap(), "https://sync.example.cn/furrow");
        assert_eq!(check_server_address("https://10.0.0.5:8470/", &[]).unwrap(), "https://10.0.0.5:8470");
    }

    #[test]
    fn http_to_this_computer_is_accepted() {
        assert_eq!(check_server_address("http://127.0.0.1:8470", &[]).unwrap(), "http://127.0.0.1:8470");
        assert_eq!(code("http://127.8.9.1:8470", &[]), "ok");
        assert_eq!(code("http://[::1]:8470", &[]), "ok");
        assert_eq!(code("http://localhost:8470", &[]), "ok");
        assert_eq!(code("HTTP://LOCALHOST:8470/", &[]), "ok");
        assert_eq!(code("http://app.localhost", &[]), "ok");
        assert_eq!(code("http://[::ffff:127.0.0.1]", &[]), "ok");
    }

    #[test]
    fn http_to_another_computer_is_refused_and_says_why() {
        let error = check_server_address("http://192.168.1.20:8470", &[]).unwrap_err();
        assert_eq!((error.field.as_str(), error.code.as_str()), ("server_url", "insecure_address"));
        assert!(error.message_zh.contains("192.168.1.20") && error.message_zh.contains("密码") && error.message_zh.contains("Wi-Fi"));
        assert!(error.message_en.contains("password") && error.message_en.contains("personal data") && error.message_en.contains("Wi-Fi"));
        assert!(error.message_en.is_ascii(), "English messages use ASCII punctuation");
        assert_eq!(code("HTTP://sync.example.cn", &[]), "insecure_address", "an upper-case scheme is still http");
        assert_eq!(code("http://localhost.example.com", &[]), "insecure_address", "a name starting with localhost is not this computer");
        assert_eq!(code("http://128.0.0.1", &[]), "insecure_address");
        assert_eq!(code("http://[fd00::1]:8470", &[]), "insecure_address");
        assert_eq!(code("http://0.0.0.0:8470", &[]), "insecure_address");
    }

    #[test]
    fn an_exception_allows_exactly_its_host() {
        assert_eq!(check_server_address("http://192.168.1.20:8470/", &["192.168.1.20".into()]).unwrap(), "http://192.168.1.20:8470");
        assert_eq!(code("http://Server.Township.Local:8470", &["server.township.local"]), "ok");
        assert_eq!(code("http://server.township.local", &[" SERVER.township.local "]), "ok");
        assert_eq!(code("http://[fd00::1]:8470", &["fd00::1"]), "ok");
        assert_eq!(code("http://192.168.1.21:8470", &["192.168.1.20"]), "insecure_address", "another host");
        assert_eq!(code("http://evil.192.168.1.20.example", &["192.168.1.20"]), "insecure_address");
        assert_eq!(code("http://township.local", &["server.township.local"]), "insecure_address", "no suffix matching");
        assert_eq!(code("http://server.township.local", &["township.local"]), "insecure_address", "no parent matching");
    }

    #[test]
    fn user_info_in_the_address_is_refused_and_never_decides_the_host() {
        assert_eq!(code("https://demo:secret@sync.example.cn", &[]), "credentials_in_address");
        assert_eq!(code("http://demo@127.0.0.1:8470", &[]), "credentials_in_address");
        // The host is what follows the `@`: a loopback user name does not make it this computer.
        assert_eq!(code("http://127.0.0.1@sync.example.cn", &[]), "insecure_address");
        assert_eq!(code("http://localhost:8470@192.168.1.20", &[]), "insecure_address");
    }

    #[test]
    fn garbage_is_not_an_address() {
        for garbage in ["", "   ", "sync.example.cn", "127.0.0.1:8470", "ftp://sync.example.cn", "http://", "https://", "mailto:a@b.cn", "file:///etc/passwd", "data:text/plain,x", "http://[::1", "http://exa mple.cn", "田垄"] {
            assert_eq!(code(garbage, &[]), "invalid_url", "{garbage:?}");
        }
    }

    #[test]
    fn hosts_are_allowed_in_their_normal_form_only() {
        assert_eq!(normalize_host(" Server.Township.LOCAL ").unwrap(), "server.township.local");
        assert_eq!(normalize_host("192.168.1.20").unwrap(), "192.168.1.20");
        assert_eq!(normalize_host("fd00::1").unwrap(), "[fd00::1]");
        assert_eq!(normalize_host("[FD00::1]").unwrap(), "[fd00::1]");
        for refused in ["", "http://192.168.1.20", "192.168.1.20:8470", "example.cn:80", "a@b", "host/path", "exa mple", "[::1"] {
            let error = normalize_host(refused).unwrap_err();
            assert_eq!((error.field.as_str(), error.code.as_str()), ("host", "invalid_host"), "{refused:?}");
        }
        assert_eq!(address_host("HTTP://Server.Township.Local:8470/x").as_deref(), Some("server.township.local"));
        assert_eq!(address_host("http://[::1]:8470").as_deref(), Some("[::1]"));
        assert_eq!(address_host("garbage"), None);
    }
}
