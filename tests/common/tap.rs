//! A TCP proxy in front of an engine that counts the bytes sent to it and, once a threshold
//! has gone through, holds the rest until the test has done what it waits to do (freeze or
//! kill the engine): "the upload is in progress" is then a fact seen on the wire, not a guess
//! made with a sleep.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Bytes sent towards the engine, over every connection.
    sent: u64,
    released: bool,
    /// The tap is gone: the listener stops at its next connection.
    closed: bool,
    /// Every socket the proxy holds, shut down when the tap goes (a frozen engine would
    /// otherwise keep their threads blocked).
    sockets: Vec<TcpStream>,
}

/// The proxy: connect to [`Tap::addr`] instead of the engine.
pub struct Tap {
    pub addr: SocketAddr,
    hold_at: u64,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Tap {
    /// Listens on an ephemeral loopback port, forwarding to `upstream`; bytes towards it
    /// beyond the first `hold_at` wait for [`Tap::release`].
    pub fn start(upstream: SocketAddr, hold_at: u64) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tap");
        let addr = listener.local_addr().unwrap();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if shared.0.lock().unwrap().closed {
                    return;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                forward(client, server, hold_at, shared.clone());
            }
        });
        Tap { addr, hold_at, state }
    }

    /// Waits until `hold_at` bytes have gone to the engine; false if they have not within
    /// `within`.
    pub fn wait_held(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap();
        while s.sent < self.hold_at {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cvar.wait_timeout(s, left).unwrap().0;
        }
        true
    }

    /// Lets the held bytes (and all after them) go on.
    pub fn release(&self) {
        let (lock, cvar) = &*self.state;
        lock.lock().unwrap().released = true;
        cvar.notify_all();
    }

    /// Bytes sent towards the engine so far.
    pub fn sent(&self) -> u64 {
        self.state.0.lock().unwrap().sent
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.release();
        let mut state = self.state.0.lock().unwrap();
        state.closed = true;
        for s in state.sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(state);
        // Wakes the listener so that it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Two threads per connection: towards the engine counted (and held), back as it comes.
fn forward(client: TcpStream, server: TcpStream, hold_at: u64, state: Arc<(Mutex<State>, Condvar)>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    {
        let mut s = state.0.lock().unwrap();
        for sock in [&client, &server] {
            if let Ok(c) = sock.try_clone() {
                s.sockets.push(c);
            }
        }
    }
    std::thread::spawn(move || {
        towards_engine(client, server, hold_at, &state);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (s2, c2);
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

fn towards_engine(mut from: TcpStream, mut to: TcpStream, hold_at: u64, state: &(Mutex<State>, Condvar)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let (lock, cvar) = state;
        let mut s = lock.lock().unwrap();
        s.sent += n as u64;
        cvar.notify_all();
        while s.sent >= hold_at && !s.released {
            s = cvar.wait(s).unwrap();
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
