//! Nix's `builtin:fetchurl`: a fixed-output derivation realised by the sandbox helper itself,
//! inside the sandbox (its network, its file system, its limits), by downloading `url`
//! (http, https, or file: a file the sandbox sees) into the output. The content is trusted
//! only because the caller checks it against the declared hash.

use std::io::{Read, Write};
use std::path::Path;

/// Downloads `url` into `out` (streamed), making it executable when asked; progress and
/// errors go to `log`.
fn fetch_url(
    url: &str,
    out: &Path,
    executable: bool,
    agent: &ureq::Agent,
    log: &mut dyn Write,
) -> Result<(), String> {
    let _ = writeln!(log, "downloading {url}");
    let mut reader: Box<dyn Read> = if let Some(path) = url.strip_prefix("file://") {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{url}: {e}"))?)
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let response = agent
            .get(url)
            .timeout(std::time::Duration::from_secs(300))
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        Box::new(response.into_reader())
    } else {
        return Err(format!(
            "{url}: builtin:fetchurl supports http, https and file URLs only"
        ));
    };
    let mut file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let n = std::io::copy(&mut reader, &mut file).map_err(|e| format!("{url}: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let _ = writeln!(log, "downloaded {n} bytes");
    Ok(())
}

/// An HTTP agent trusting the given certificate authorities (PEM), else ureq's defaults.
fn agent(ca_certificates: Option<&str>) -> Result<ureq::Agent, String> {
    let builder = ureq::AgentBuilder::new();
    let Some(pem) = ca_certificates else {
        return Ok(builder.build());
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the host's certificate authorities: {e}"))?;
        // One certificate rustls cannot use does not stop the others from working.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("the host's certificate authority file holds no certificate".into());
    }
    // Named explicitly: more than one provider is compiled in (libp2p brings aws-lc-rs).
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(builder.tls_config(std::sync::Arc::new(config)).build())
}

/// Downloads the first of `urls` that answers into `out`; each failure is logged and the
/// next URL tried. The error names every URL's failure.
fn fetch_first(
    urls: &[String],
    out: &Path,
    executable: bool,
    agent: &ureq::Agent,
    log: &mut dyn Write,
) -> Result<String, String> {
    let mut failures = Vec::new();
    for url in urls {
        match fetch_url(url, out, executable, agent, log) {
            Ok(()) => return Ok(url.clone()),
            Err(e) => {
                let _ = writeln!(log, "{e}");
                failures.push(e);
            }
        }
    }
    Err(match failures.len() {
        0 => "builtin:fetchurl: no URL".to_string(),
        1 => failures.remove(0),
        n => format!("all {n} URLs failed: {}", failures.join("; ")),
    })
}

/// Runs a `builtin:fetchurl` inside the sandbox: downloads into the output, or, with
/// `unpack`, into the build directory and restores the NAR it holds as the output.
pub fn fetch_in_sandbox(
    fetch: &crate::sandbox::BuiltinFetch,
    log: &mut dyn Write,
) -> Result<(), String> {
    let agent = agent(fetch.ca_certificates.as_deref())?;
    if !fetch.unpack {
        return fetch_first(&fetch.urls, &fetch.out, fetch.executable, &agent, log).map(drop);
    }
    let download = Path::new("/build/download");
    let url = fetch_first(&fetch.urls, download, false, &agent, log)?;
    let file = std::fs::File::open(download).map_err(|e| format!("{}: {e}", download.display()))?;
    let mut file = std::io::BufReader::new(file);
    let gzip = std::io::BufRead::fill_buf(&mut file)
        .map_err(|e| e.to_string())?
        .starts_with(&[0x1f, 0x8b]);
    let source: Box<dyn Read> = if gzip {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(file)
    };
    guixie_formats::nar::restore(source, &fetch.out)
        .map_err(|e| format!("{url}: unpacking the NAR: {e}"))?;
    let _ = writeln!(log, "unpacked into {}", fetch.out.display());
    Ok(())
}
