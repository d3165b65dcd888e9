//! `ssh://` engines: a local unix-socket proxy whose every connection is its own ssh2 session
//! with a `direct-streamlocal` channel to the remote Docker socket. Bollard then talks to the
//! proxy socket as if the engine were local.
//!
//! One session per connection because a session's channels share one lock: a blocking read on
//! one would stall every other. Each connection is pumped by a plain thread in non-blocking
//! mode with `poll(2)`, so nothing waits on the async runtime and everything stops within a
//! poll interval once the [`Tunnel`] is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ssh2::Session;

use crate::config::SshHostKeyPolicy;

/// How often idle loops look at the stop flag.
const POLL_MS: i32 = 50;
/// libssh2's "would block" and "timed out" codes.
const EAGAIN: libc::c_int = -37;
const TIMEOUT: libc::c_int = -9;

/// Everything needed to open a session to one ssh engine.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The remote user to authenticate as.
    pub user: String,
    /// The sshd's address.
    pub host: String,
    /// The sshd's port.
    pub port: u16,
    /// The private key file to authenticate with.
    pub identity: PathBuf,
    /// The OpenSSH `known_hosts` file the host key is checked against.
    pub known_hosts: PathBuf,
    /// What to do with a host key the file does not pin.
    pub policy: SshHostKeyPolicy,
    /// The Docker socket on the remote machine the tunnel forwards to.
    pub remote_socket: String,
    /// Bound on connecting, key exchange and authentication.
    pub timeout: Duration,
}

impl SshTarget {
    fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// How known_hosts names this server (`[host]:port` off the default port).
    fn known_hosts_name(&self) -> String {
        super::known_hosts::host_name(&self.host, self.port)
    }
}

/// The first identity file that exists among the usual ones, for hosts without `identity`.
pub fn default_identity() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let p = home.join(".ssh").join(name);
        if p.exists() {
            return p;
        }
    }
    home.join(".ssh/id_ed25519")
}

/// `~/.ssh/known_hosts`, for hosts without `known_hosts`.
pub fn default_known_hosts() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".ssh/known_hosts")
}

/// An authenticated session and the file descriptor of its TCP connection, to poll on.
pub struct SshSession {
    /// The authenticated session.
    pub session: Session,
    /// Its TCP connection's descriptor.
    pub tcp_fd: RawFd,
}

/// Connects, checks the host key, authenticates. Blocking; bounded by `target.timeout`.
/// The error is a short reason ("connection refused", "ssh auth failed (…)").
pub fn open_session(t: &SshTarget) -> Result<SshSession, String> {
    let secs = t.timeout.as_secs_f64();
    let addrs: Vec<_> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("cannot resolve {}", t.host))?;
    let tcp = TcpStream::connect_timeout(addr, t.timeout).map_err(|e| match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => format!("timeout after {secs}s"),
        _ => e.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let mut sess = Session::new().map_err(|e| format!("ssh: {}", e.message()))?;
    sess.set_timeout(t.timeout.as_millis().min(u32::MAX as u128) as u32);
    sess.set_tcp_stream(tcp);
    sess.handshake().map_err(|e| {
        if e.code() == ssh2::ErrorCode::Session(TIMEOUT) {
            format!("timeout after {secs}s (ssh handshake)")
        } else {
            format!("ssh handshake failed: {}", e.message())
        }
    })?;
    check_host_key(&sess, t)?;
    let rejected = || {
        format!(
            "ssh auth failed (key {} rejected for {})",
            t.identity.display(),
            t.display()
        )
    };
    if !t.identity.exists() {
        return Err(format!("ssh auth failed (key {} missing)", t.identity.display()));
    }
    sess.userauth_pubkey_file(&t.user, None, &t.identity, None)
        .map_err(|_| rejected())?;
    if !sess.authenticated() {
        return Err(rejected());
    }
    Ok(SshSession {
        session: sess,
        tcp_fd: fd,
    })
}

fn check_host_key(sess: &Session, t: &SshTarget) -> Result<(), String> {
    use super::known_hosts::{KnownHosts, Verdict};
    if t.policy == SshHostKeyPolicy::Off {
        return Ok(());
    }
    let (key, _) = sess.host_key().ok_or("ssh: server sent no host key")?;
    let text = match std::fs::read_to_string(&t.known_hosts) {
        Ok(text) => text,
        // No file (or a path through a plain file) holds nothing yet.
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => String::new(),
        Err(e) => return Err(format!("known_hosts {}: {e}", t.known_hosts.display())),
    };
    let name = t.known_hosts_name();
    let file = t.known_hosts.display();
    match KnownHosts::parse(&text).check(&t.host, t.port, key) {
        Verdict::Match => Ok(()),
        Verdict::Revoked(line) => Err(format!("host key of {name} is revoked ({file}:{line})")),
        Verdict::CertAuthority(line) => Err(format!(
            "{name} is pinned by @cert-authority ({file}:{line}), which cargo-shard cannot check: add its host key"
        )),
        Verdict::Mismatch(line) => Err(format!("host key mismatch for {name} (see {file}:{line})")),
        Verdict::NotFound if t.policy == SshHostKeyPolicy::Strict => Err(format!(
            "host key for {name} not in {file} (host_key_check = \"strict\")"
        )),
        Verdict::NotFound => {
            remember(&t.known_hosts, &name, key, &text);
            Ok(())
        }
    }
}

/// Appends `name`'s key to known_hosts (accept-new). A file that cannot be written costs one
/// warning per file and run, not the connection.
fn remember(path: &Path, name: &str, key: &[u8], text: &str) {
    static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    // Sessions open in parallel: one appends, the others find its line.
    static APPENDING: Mutex<()> = Mutex::new(());
    let _one = APPENDING.lock().unwrap_or_else(|p| p.into_inner());
    let Some(line) = super::known_hosts::entry_line(name, key) else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| text.to_string());
    if text.lines().any(|l| l == line) {
        return;
    }
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(path))
        .and_then(|mut f| f.write_all(format!("{sep}{line}\n").as_bytes()));
    if let Err(e) = written {
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if !warned.iter().any(|p| p == path) {
            warned.push(path.to_path_buf());
            eprintln!(
                "warning: cannot record the host key of {name} in {}: {e}; accepted for this run only",
                path.display()
            );
        }
    }
}

/// A running proxy; dropping it stops the listener and every connection.
pub struct Tunnel {
    socket: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// What the listener and every connection thread share.
struct Shared {
    target: SshTarget,
    /// Authenticated sessions with no open channel, ready for the next connection: a fresh
    /// one costs a key exchange and authentication (tens of ms) per Docker request.
    idle: Mutex<Vec<SshSession>>,
    /// Sessions being opened in the background to keep `idle` at [`IDLE_MIN`].
    warming: AtomicUsize,
    stop: AtomicBool,
}

/// Sequential requests each open a connection before the last one's session is back.
const IDLE_MIN: usize = 2;
const IDLE_MAX: usize = 8;

impl Tunnel {
    /// Checks that a session can be opened (so a bad key fails here, with a reason), then
    /// starts the proxy.
    pub fn start(target: SshTarget) -> Result<Tunnel, String> {
        let probe = open_session(&target)?;
        // The remote socket must answer too, or every request would fail later, less clearly.
        match probe
            .session
            .channel_direct_streamlocal(&target.remote_socket, None)
        {
            Ok(mut ch) => {
                let _ = ch.close().and_then(|()| ch.wait_close());
            }
            Err(e) => {
                return Err(format!(
                    "remote socket {} unreachable over ssh: {}",
                    target.remote_socket,
                    e.message()
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("cargo-shard-ssh-")
            .tempdir()
            .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        // Only we may use the proxy: it is an authenticated path to a root-equivalent socket.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700));
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| format!("cannot bind proxy socket: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("proxy socket: {e}"))?;
        let shared = Arc::new(Shared {
            target,
            idle: Mutex::new(vec![probe]),
            warming: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        warm(&shared);
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("ssh-proxy".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| format!("cannot start the proxy thread: {e}"))?;
        Ok(Tunnel {
            socket,
            shared,
            accept: Some(accept),
            _dir: dir,
        })
    }

    /// The local unix socket bollard connects to; each connection becomes a channel to the remote
    /// socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Idle sessions go now; busy ones when their thread sees `stop`.
        self.shared.idle().clear();
    }
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SshSession>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((conn, _)) => {
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("ssh-proxy-conn".into())
                    .spawn(move || serve(conn, &s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                poll(&mut [pollfd(listener.as_raw_fd(), libc::POLLIN)], POLL_MS);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(POLL_MS as u64)),
        }
    }
}

/// Opens sessions in the background until `IDLE_MIN` are idle or being opened.
fn warm(shared: &Arc<Shared>) {
    loop {
        let have = shared.idle().len() + shared.warming.load(Ordering::SeqCst);
        if have >= IDLE_MIN || shared.stopped() {
            return;
        }
        shared.warming.fetch_add(1, Ordering::SeqCst);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ssh-proxy-warm".into())
            .spawn(move || {
                if let Ok(session) = open_session(&s.target)
                    && !s.stopped()
                {
                    s.idle().push(session);
                }
                s.warming.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.warming.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
}

/// One proxied connection. When no session or channel can be opened the local side is simply
/// closed: the client sees the connection drop, as with a dead engine.
fn serve(conn: UnixStream, shared: &Arc<Shared>) {
    let Some(Connection { ssh, mut channel }) = session_with_channel(shared) else {
        return;
    };
    warm(shared);
    if pump(conn, &ssh.session, &mut channel, ssh.tcp_fd, &shared.stop).is_ok() && !shared.stopped() {
        ssh.session.set_blocking(true);
        let closed = channel.close().and_then(|()| channel.wait_close());
        drop(channel);
        let mut idle = shared.idle();
        if closed.is_ok() && idle.len() < IDLE_MAX {
            idle.push(ssh);
        }
    }
}

/// A session and its channel to the remote Docker socket: one proxied connection's remote end.
struct Connection {
    ssh: SshSession,
    channel: ssh2::Channel,
}

/// A session (an idle one when any still works) with a channel open to the remote socket.
fn session_with_channel(shared: &Shared) -> Option<Connection> {
    let socket = &shared.target.remote_socket;
    loop {
        let pooled = shared.idle().pop();
        let Some(ssh) = pooled else { break };
        // An idle session may have been closed by the server meanwhile: then try the next.
        if let Ok(ch) = ssh.session.channel_direct_streamlocal(socket, None) {
            return Some(Connection { ssh, channel: ch });
        }
    }
    let ssh = open_session(&shared.target).ok()?;
    let channel = ssh.session.channel_direct_streamlocal(socket, None).ok()?;
    Some(Connection { ssh, channel })
}

/// Moves bytes both ways between the client and the channel until both sides have ended,
/// `stop` is set, or the ssh connection drops.
fn pump(
    local: UnixStream,
    sess: &Session,
    channel: &mut ssh2::Channel,
    tcp_fd: RawFd,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    local.set_nonblocking(true)?;
    sess.set_blocking(false);
    let mut pump = Pump::new(local);
    while !stop.load(Ordering::Relaxed) {
        let progress = pump.step(channel)?;
        match pump.after_remote_eof() {
            AfterEof::Done => break,
            AfterEof::Again => continue,
            AfterEof::NotYet => {}
        }
        if !progress {
            pump.wait(sess, tcp_fd)?;
        }
    }
    Ok(())
}

/// One proxied connection's bytes in flight between the local client and the ssh channel.
struct Pump {
    local: UnixStream,
    buf: Vec<u8>,
    /// local → remote, not yet accepted by the channel.
    up: Vec<u8>,
    /// remote → local, not yet written.
    down: Vec<u8>,
    local_eof: bool,
    eof_sent: bool,
    remote_eof: bool,
}

/// What the loop does once the engine may have said everything.
enum AfterEof {
    /// The engine has not finished: pump on.
    NotYet,
    /// Both sides are done.
    Done,
    /// Only the client is still open: look again.
    Again,
}

impl Pump {
    fn new(local: UnixStream) -> Self {
        Self {
            local,
            buf: vec![0u8; 64 * 1024],
            up: Vec::new(),
            down: Vec::new(),
            local_eof: false,
            eof_sent: false,
            remote_eof: false,
        }
    }

    /// One pass moving bytes both ways without blocking; true when anything moved.
    fn step(&mut self, channel: &mut ssh2::Channel) -> std::io::Result<bool> {
        let mut progress = self.read_local()?;
        progress |= self.write_channel(channel)?;
        self.send_eof(channel);
        progress |= self.read_channel(channel)?;
        progress |= self.write_local()?;
        Ok(progress)
    }

    fn read_local(&mut self) -> std::io::Result<bool> {
        if !self.up.is_empty() || self.local_eof {
            return Ok(false);
        }
        match unless_would_block(self.local.read(&mut self.buf))? {
            None => Ok(false),
            Some(0) => {
                self.local_eof = true;
                Ok(true)
            }
            Some(n) => {
                self.up.extend_from_slice(&self.buf[..n]);
                Ok(true)
            }
        }
    }

    fn write_channel(&mut self, channel: &mut ssh2::Channel) -> std::io::Result<bool> {
        if self.up.is_empty() {
            return Ok(false);
        }
        let n = unless_would_block(channel.write(&self.up))?.unwrap_or(0);
        self.up.drain(..n);
        Ok(n > 0)
    }

    /// Passes the client's EOF on once everything it sent is in the channel.
    fn send_eof(&mut self, channel: &mut ssh2::Channel) {
        if self.local_eof && self.up.is_empty() && !self.eof_sent {
            match channel.send_eof() {
                Ok(()) => self.eof_sent = true,
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
                Err(_) => self.eof_sent = true,
            }
        }
    }

    fn read_channel(&mut self, channel: &mut ssh2::Channel) -> std::io::Result<bool> {
        if !self.down.is_empty() || self.remote_eof {
            return Ok(false);
        }
        match unless_would_block(channel.read(&mut self.buf))? {
            None => Ok(false),
            Some(0) => {
                self.remote_eof = channel.eof();
                Ok(self.remote_eof)
            }
            Some(n) => {
                self.down.extend_from_slice(&self.buf[..n]);
                Ok(true)
            }
        }
    }

    fn write_local(&mut self) -> std::io::Result<bool> {
        if self.down.is_empty() {
            return Ok(false);
        }
        let n = unless_would_block(self.local.write(&self.down))?.unwrap_or(0);
        self.down.drain(..n);
        Ok(n > 0)
    }

    fn after_remote_eof(&mut self) -> AfterEof {
        if !self.remote_eof || !self.down.is_empty() {
            return AfterEof::NotYet;
        }
        // The engine has said everything; hyper needs no more from us once it reads EOF.
        let _ = self.local.shutdown(std::net::Shutdown::Write);
        if self.local_eof || self.eof_sent {
            return AfterEof::Done;
        }
        // Keep reading the client until it closes (or stop), but there is nothing to pump.
        let mut fds = [pollfd(self.local.as_raw_fd(), libc::POLLIN)];
        poll(&mut fds, POLL_MS);
        match self.local.read(&mut self.buf) {
            Ok(0) => AfterEof::Done,
            Ok(_) => AfterEof::Again,
            Err(e) if e.kind() == ErrorKind::WouldBlock => AfterEof::Again,
            Err(_) => AfterEof::Done,
        }
    }

    /// Sleeps until either side can move bytes, or a poll interval passes.
    fn wait(&self, sess: &Session, tcp_fd: RawFd) -> std::io::Result<()> {
        let mut local_events = 0;
        if self.up.is_empty() && !self.local_eof {
            local_events |= libc::POLLIN;
        }
        if !self.down.is_empty() {
            local_events |= libc::POLLOUT;
        }
        let mut fds = [
            pollfd(self.local.as_raw_fd(), local_events),
            pollfd(tcp_fd, self.remote_events(sess.block_directions())),
        ];
        poll(&mut fds, POLL_MS);
        if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 && fds[1].revents & libc::POLLIN == 0 {
            return Err(std::io::Error::new(ErrorKind::BrokenPipe, "ssh connection lost"));
        }
        Ok(())
    }

    /// Waits for the ssh socket only in the directions that can make progress, or a slow
    /// local reader would turn the loop into a busy one on readable ssh data.
    fn remote_events(&self, dirs: ssh2::BlockDirections) -> libc::c_short {
        let mut events = 0;
        if (self.down.is_empty() && !self.remote_eof)
            || matches!(dirs, ssh2::BlockDirections::Inbound | ssh2::BlockDirections::Both)
        {
            events |= libc::POLLIN;
        }
        if matches!(
            dirs,
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        events
    }
}

/// `None` for "would block", so callers handle only bytes moved and real errors.
fn unless_would_block(r: std::io::Result<usize>) -> std::io::Result<Option<usize>> {
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) {
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the whole call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}
