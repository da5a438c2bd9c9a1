//! A sandbox whose only egress is a gateway of the caller's: a port on the sandbox's own
//! loopback whose connections are carried, byte for byte, to a Unix socket the caller
//! listens on (bound into the sandbox read-only). The carrier is a child of PID 1, made
//! before the builder starts, with no capabilities and under the same seccomp filter: it
//! can reach nothing the builder could not, and all policy (what is recorded, what is
//! answered) is the caller's, outside.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewaySpec {
    /// The port on the sandbox's 127.0.0.1 that leads to the gateway.
    pub port: u16,
    /// The gateway's Unix socket, as the sandbox sees it.
    pub socket: PathBuf,
}

/// Binds the port, then forks the carrier; returns in PID 1 once the port is listening,
/// so the builder's first connection already finds it.
pub(super) fn start_carrier(spec: &GatewaySpec) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", spec.port)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the gateway's port 127.0.0.1:{}: {e}", spec.port),
        )
    })?;
    // SAFETY: fork in a single-threaded process (PID 1 before the builder's exec).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(());
    }
    super::die_with_parent();
    // Nothing of the carrier unwinds into PID 1's code: any failure ends the carrier.
    let code = std::panic::catch_unwind(|| match super::drop_capabilities() {
        Ok(()) => carry(&listener, &spec.socket),
        Err(e) => {
            eprintln!("guixie sandbox: the gateway's carrier: {e}");
            1
        }
    })
    .unwrap_or(1);
    // SAFETY: leaving the forked carrier without running PID 1's destructors.
    unsafe { libc::_exit(code) }
}

fn carry(listener: &TcpListener, socket: &Path) -> i32 {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let socket = socket.to_path_buf();
        // Out of threads (the build's RLIMIT_NPROC is shared): this connection is dropped.
        let _ = std::thread::Builder::new().spawn(move || {
            if let Ok(gateway) = UnixStream::connect(&socket) {
                splice(client, gateway);
            }
        });
    }
    0
}

/// Copies each way until both sides are done, passing on each half-close.
fn splice(client: TcpStream, gateway: UnixStream) {
    let (Ok(mut client_r), Ok(mut gateway_r)) = (client.try_clone(), gateway.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new().spawn(move || {
        let mut gateway_w = gateway;
        let _ = io::copy(&mut client_r, &mut gateway_w);
        let _ = gateway_w.shutdown(Shutdown::Write);
    });
    let Ok(up) = up else { return };
    let mut client_w = client;
    let _ = io::copy(&mut gateway_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Write);
    let _ = up.join();
}
