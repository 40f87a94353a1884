//! A TCP proxy between devices and the server that injects the faults of a link that drops: the
//! connection cut before the request reaches the server, in the middle of the request body, after
//! the server committed but before the answer arrives, in the middle of the answer's body, and
//! requests delivered twice; and a slow link that drops ([`Link`]: a rate, a round trip, a chance
//! of a drop per 16 KB). It reads HTTP/1.1 framing (Content-Length and chunked bodies) so that
//! each fault hits one request, also on kept-alive connections, and counts the bytes on the wire.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault injected into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The connection drops before the request reaches the server.
    DropBeforeRequest,
    /// The connection drops after half the request body reached the server.
    DropMidRequest,
    /// The server handles the request (and commits), then the connection drops before the answer.
    DropAfterCommit,
    /// The answer is cut in the middle of its body.
    DropMidResponse,
    /// The request reaches the server twice; the client sees the second answer.
    Duplicate,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 5] = [Fault::DropBeforeRequest, Fault::DropMidRequest, Fault::DropAfterCommit, Fault::DropMidResponse, Fault::Duplicate];
}

/// Bytes and requests seen for one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Requests.
    pub requests: u64,
    /// Bytes from the client (headers and body).
    pub request_bytes: u64,
    /// Bytes of request bodies.
    pub request_body_bytes: u64,
    /// Bytes to the client (headers and body).
    pub response_bytes: u64,
    /// Bytes of answer bodies.
    pub response_body_bytes: u64,
}

struct Random {
    rng: fastrand::Rng,
    probability: f64,
    path_prefix: String,
}

/// A fault aimed at one later request of a method and path.
struct Aimed {
    method: String,
    path_prefix: String,
    skip: u64,
    fault: Fault,
}

/// A slow link that drops, as assistants meet it in town: a rate in each direction, a round-trip
/// delay, and a chance of a drop for every 16 KB on the wire (a message cut at a random point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Bytes per second in each direction.
    pub bytes_per_second: f64,
    /// The round-trip time.
    pub round_trip: Duration,
    /// The chance that a connection drops while 16 KB cross it.
    pub drop_per_16k: f64,
}

impl Link {
    /// A link of `kbit` kilobits per second, `round_trip_ms` of round trip and a `drop_per_16k`
    /// chance of a drop per 16 KB.
    pub fn new(kbit: f64, round_trip_ms: u64, drop_per_16k: f64) -> Link {
        Link { bytes_per_second: kbit * 1000.0 / 8.0, round_trip: Duration::from_millis(round_trip_ms), drop_per_16k }
    }

    /// How long `bytes` take to cross one way.
    fn crossing(&self, bytes: usize) -> Duration {
        self.round_trip / 2 + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second.max(1.0))
    }
}

struct LinkState {
    link: Link,
    rng: fastrand::Rng,
}

impl LinkState {
    /// Where a message of `bytes` is cut, as a share of it, or `None` when it crosses whole.
    fn cut(&mut self, bytes: usize) -> Option<f64> {
        let whole = (1.0 - self.link.drop_per_16k).powf(bytes as f64 / 16384.0);
        (self.rng.f64() >= whole).then(|| self.rng.f64())
    }
}

#[derive(Default)]
struct Shared {
    queue: VecDeque<(String, Fault)>,
    aimed: Vec<Aimed>,
    random: Option<Random>,
    link: Option<LinkState>,
    /// Requests under these paths are all cut in the middle of their body.
    blocked: Vec<String>,
    injected: HashMap<Fault, u64>,
    traffic: HashMap<String, Traffic>,
}

/// The running proxy. Stops accepting when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("an address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_shared, accept_stop) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || {
                    let _ = serve_connection(client, upstream, &shared);
                });
            }
        });
        FaultProxy { url: format!("http://{address}"), address, shared, stop }
    }

    /// Queues a fault for the next request whose path starts with `path_prefix`.
    pub fn inject(&self, path_prefix: &str, fault: Fault) {
        self.lock().queue.push_back((path_prefix.to_owned(), fault));
    }

    /// Queues a fault for a later request: the one after the next `skip` requests of `method`
    /// (`PATCH`, `HEAD`, ...) whose path starts with `path_prefix`, counting from now. Several
    /// aimed faults count the same requests, each from when it was queued.
    pub fn inject_nth(&self, method: &str, path_prefix: &str, skip: u64, fault: Fault) {
        self.lock().aimed.push(Aimed { method: method.to_ascii_uppercase(), path_prefix: path_prefix.to_owned(), skip, fault });
    }

    /// Injects a random fault into each request under `path_prefix` with `probability`, drawn
    /// from a generator seeded with `seed`; a probability of 0 turns it off.
    pub fn randomise(&self, seed: u64, probability: f64, path_prefix: &str) {
        self.lock().random = (probability > 0.0).then(|| Random {
            rng: fastrand::Rng::with_seed(seed),
            probability,
            path_prefix: path_prefix.to_owned(),
        });
    }

    /// Puts the link between devices and the server through a slow link that drops (`None`: a
    /// clean loopback again). Seeded, so a run can be repeated.
    pub fn set_link(&self, link: Option<Link>, seed: u64) {
        self.lock().link = link.map(|link| LinkState { link, rng: fastrand::Rng::with_seed(seed) });
    }

    /// Cuts every request under `path_prefix` in the middle of its body until [`FaultProxy::unblock`].
    pub fn block(&self, path_prefix: &str) {
        self.lock().blocked.push(path_prefix.to_owned());
    }

    /// Lets requests under every path through again.
    pub fn unblock(&self) {
        self.lock().blocked.clear();
    }

    /// Stops injecting faults (queued, aimed and random). The link set with
    /// [`FaultProxy::set_link`] and blocked paths stay.
    pub fn heal(&self) {
        let mut shared = self.lock();
        shared.queue.clear();
        shared.aimed.clear();
        shared.random = None;
    }

    /// How many times each fault was injected.
    pub fn injected(&self, fault: Fault) -> u64 {
        *self.lock().injected.get(&fault).unwrap_or(&0)
    }

    /// Every fault injected so far.
    pub fn injected_total(&self) -> u64 {
        self.lock().injected.values().sum()
    }

    /// The traffic seen for paths starting with `path_prefix`.
    pub fn traffic(&self, path_prefix: &str) -> Traffic {
        let shared = self.lock();
        let mut total = Traffic::default();
        for (path, traffic) in &shared.traffic {
            if path.starts_with(path_prefix) {
                total.requests += traffic.requests;
                total.request_bytes += traffic.request_bytes;
                total.request_body_bytes += traffic.request_body_bytes;
                total.response_bytes += traffic.response_bytes;
                total.response_body_bytes += traffic.response_body_bytes;
            }
        }
        total
    }

    /// Forgets the counted traffic.
    pub fn reset_traffic(&self) {
        self.lock().traffic.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// One HTTP/1.1 message as raw bytes, split into head and body.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    first_line: String,
    status: u16,
}

impl Message {
    fn bytes(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend_from_slice(&self.body);
        all
    }
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

/// Reads one message; `None` on a clean end of stream before it starts. `bodyless` is set for
/// answers to HEAD requests, which carry no body whatever their headers say.
fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>, bodyless: bool) -> io::Result<Option<Message>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return if buffer.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head: Vec<u8> = buffer.drain(..head_end).collect();
    let text = String::from_utf8_lossy(&head).into_owned();
    let first_line = text.lines().next().unwrap_or_default().to_owned();
    let status = if first_line.starts_with("HTTP/") {
        first_line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    } else {
        0
    };
    let no_body = bodyless || status == 204 || status == 304 || (100..200).contains(&status);
    let chunked = header_value(&text, "transfer-encoding").is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if !no_body && chunked {
        // Chunks are copied as they are, sizes and all, up to the final empty chunk.
        loop {
            let line_end = loop {
                if let Some(position) = buffer.windows(2).position(|window| window == b"\r\n") {
                    break position + 2;
                }
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..read]);
            };
            let line: Vec<u8> = buffer.drain(..line_end).collect();
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            body.extend_from_slice(&line);
            let needed = size + 2;
            while buffer.len() < needed {
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            body.extend(buffer.drain(..needed));
            if size == 0 {
                break;
            }
        }
    } else if !no_body {
        let length: usize = header_value(&text, "content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
        while buffer.len() < length {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        body.extend(buffer.drain(..length));
    }
    Ok(Some(Message { head, body, first_line, status }))
}

fn exchange(upstream: SocketAddr, request: &Message, bodyless: bool) -> io::Result<Message> {
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(60)))?;
    server.write_all(&request.bytes())?;
    let mut buffer = Vec::new();
    read_message(&mut server, &mut buffer, bodyless)?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
}

fn choose(shared: &Mutex<Shared>, method: &str, path: &str) -> Option<Fault> {
    let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut aimed_fault = None;
    let mut index = 0;
    while index < shared.aimed.len() {
        let aimed = &mut shared.aimed[index];
        if aimed.method.eq_ignore_ascii_case(method) && path.starts_with(aimed.path_prefix.as_str()) {
            if aimed.skip == 0 && aimed_fault.is_none() {
                aimed_fault = Some(shared.aimed.remove(index).fault);
                continue;
            }
            aimed.skip = aimed.skip.saturating_sub(1);
        }
        index += 1;
    }
    let fault = if aimed_fault.is_some() {
        aimed_fault
    } else if let Some(index) = shared.queue.iter().position(|(prefix, _)| path.starts_with(prefix.as_str())) {
        shared.queue.remove(index).map(|(_, fault)| fault)
    } else if let Some(random) = shared.random.as_mut().filter(|random| path.starts_with(random.path_prefix.as_str())) {
        if random.rng.f64() < random.probability {
            Some(Fault::ALL[random.rng.usize(..Fault::ALL.len())])
        } else {
            None
        }
    } else {
        None
    };
    if let Some(fault) = fault {
        *shared.injected.entry(fault).or_default() += 1;
    }
    fault
}

fn count(shared: &Mutex<Shared>, path: &str, request: &Message, response: Option<&Message>) {
    let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let traffic = shared.traffic.entry(path.to_owned()).or_default();
    traffic.requests += 1;
    traffic.request_bytes += (request.head.len() + request.body.len()) as u64;
    traffic.request_body_bytes += request.body.len() as u64;
    if let Some(response) = response {
        traffic.response_bytes += (response.head.len() + response.body.len()) as u64;
        traffic.response_body_bytes += response.body.len() as u64;
    }
}

/// How long `bytes` take to cross the link and where they are cut, if a link is set.
fn link_crossing(shared: &Mutex<Shared>, bytes: usize) -> Option<(Duration, Option<f64>)> {
    let mut shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = shared.link.as_mut()?;
    let cut = state.cut(bytes);
    Some((state.link.crossing(bytes), cut))
}

fn serve_connection(mut client: TcpStream, upstream: SocketAddr, shared: &Mutex<Shared>) -> io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_message(&mut client, &mut buffer, false)? else { return Ok(()) };
        let mut words = request.first_line.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
        let bodyless = method.eq_ignore_ascii_case("HEAD");
        let blocked = {
            let shared = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            shared.blocked.iter().any(|prefix| path.starts_with(prefix.as_str()))
        };
        // The link: the request takes its time to cross, and may be cut on the way.
        let crossing = link_crossing(shared, request.head.len() + request.body.len());
        let fault = if blocked { Some(Fault::DropMidRequest) } else { choose(shared, &method, &path) };
        if let Some((time, cut)) = crossing {
            if let (Some(cut), None) = (cut, fault) {
                std::thread::sleep(time.mul_f64(cut));
                count(shared, &path, &request, None);
                let mut server = TcpStream::connect(upstream)?;
                let body_part = ((request.head.len() + request.body.len()) as f64 * cut) as usize;
                server.write_all(&request.head)?;
                server.write_all(&request.body[..body_part.saturating_sub(request.head.len()).min(request.body.len())])?;
                std::thread::sleep(Duration::from_millis(5));
                let _ = server.shutdown(Shutdown::Both);
                return client.shutdown(Shutdown::Both);
            }
            std::thread::sleep(time);
        }
        match fault {
            Some(Fault::DropBeforeRequest) => {
                count(shared, &path, &request, None);
                return client.shutdown(Shutdown::Both);
            }
            Some(Fault::DropMidRequest) => {
                count(shared, &path, &request, None);
                let mut server = TcpStream::connect(upstream)?;
                server.write_all(&request.head)?;
                server.write_all(&request.body[..request.body.len() / 2])?;
                // Give the server time to start reading the cut body before the drop.
                std::thread::sleep(Duration::from_millis(5));
                let _ = server.shutdown(Shutdown::Both);
                return client.shutdown(Shutdown::Both);
            }
            _ => {}
        }
        let mut response = exchange(upstream, &request, bodyless)?;
        if fault == Some(Fault::Duplicate) {
            response = exchange(upstream, &request, bodyless)?;
        }
        count(shared, &path, &request, Some(&response));
        if let Some((time, cut)) = link_crossing(shared, response.head.len() + response.body.len()) {
            if let (Some(cut), None) = (cut, fault) {
                std::thread::sleep(time.mul_f64(cut));
                let part = ((response.head.len() + response.body.len()) as f64 * cut) as usize;
                let all = response.bytes();
                client.write_all(&all[..part.min(all.len())])?;
                return client.shutdown(Shutdown::Both);
            }
            std::thread::sleep(time);
        }
        match fault {
            Some(Fault::DropAfterCommit) => return client.shutdown(Shutdown::Both),
            Some(Fault::DropMidResponse) => {
                client.write_all(&response.head)?;
                client.write_all(&response.body[..response.body.len() / 2])?;
                return client.shutdown(Shutdown::Both);
            }
            _ => client.write_all(&response.bytes())?,
        }
        let _ = response.status;
    }
}
