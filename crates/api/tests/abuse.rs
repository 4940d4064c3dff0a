//! Issue 23, acceptance 3: the API on the plant network cannot starve the
//! line. Half-sent requests are cut off at the header timeout and capped,
//! uploads go one at a time and only when the data partition keeps its
//! reserve, and a client guessing tokens is locked out.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Line, call, set_api, write_config};

/// The header timeout the flood test configures, seconds.
const HEADER_TIMEOUT_S: u64 = 2;
/// Connections the flood test allows from one client.
const PER_CLIENT: usize = 256;
/// Half-open connections in a flood.
const FLOOD: usize = 2000;

fn server(line: &Line) -> SocketAddr {
    line.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to `server` from the loopback address `source`: another
/// client on the plant network, as the server counts clients.
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = socket.connect(server).await.unwrap().into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    })
}

/// Reads one answer: its status and body. A `100 Continue` is skipped.
fn read_answer(stream: &mut std::net::TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let code: u16 = head[9..12].parse().unwrap();
            if code == 100 {
                bytes.drain(..end + 4);
                continue;
            }
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]);
                return (code, body.to_string());
            }
        }
        let read = stream.read(&mut buffer).expect("an answer within 30 s");
        assert!(read > 0, "closed before a whole answer: {bytes:?}");
        bytes.extend_from_slice(&buffer[..read]);
    }
}

/// Waits for `HTTP/1.1 100 Continue`: the server has begun to read the body.
fn read_continue(stream: &mut std::net::TcpStream) {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed: {bytes:?}");
        bytes.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&bytes);
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
}

fn upload_head(token: &str, length: u64, expect_continue: bool) -> String {
    let expect = if expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!(
        "POST /ota/packages HTTP/1.1\r\nHost: box\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n{expect}\r\n"
    )
}

fn files_in(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != "queued")
                .collect()
        })
        .unwrap_or_default()
}

/// The soft limit on open files: what is open now and `extra`, as a box's
/// daemon has a fixed limit. Without the API's caps, a flood would take
/// the descriptors the camera needs for its next frame.
fn limit_open_files(extra: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let wanted = open + extra;
    let limit = getrlimit(Resource::Nofile);
    assert!(
        limit.maximum.is_none_or(|maximum| maximum >= wanted),
        "this test needs {wanted} open files; the hard limit is {:?}",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

/// Opens `FLOOD` connections from 127.0.0.2, each with half a request line,
/// then calls `meanwhile` while they are open. How long each stayed open
/// until the server closed it; `None` for one still open after `bound`.
async fn flood(
    server: SocketAddr,
    bound: Duration,
    meanwhile: impl FnOnce() + Send + 'static,
) -> Vec<Option<Duration>> {
    let mut open = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let stream = socket.connect(server).await.unwrap();
        let opened = Instant::now();
        let sent = match stream.writable().await {
            Ok(()) => stream.try_write(b"GET /sta").map(|_| ()),
            Err(error) => Err(error),
        };
        open.push(tokio::spawn(async move {
            if sent.is_err() {
                return Some(opened.elapsed());
            }
            let mut buffer = [0u8; 512];
            // Until the server closes it: end of stream, or a reset.
            let closed = tokio::time::timeout(bound, async {
                while stream.readable().await.is_ok() {
                    match stream.try_read(&mut buffer) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            })
            .await;
            closed.ok().map(|()| opened.elapsed())
        }));
    }
    tokio::task::spawn_blocking(meanwhile).await.unwrap();
    let mut lifetimes = Vec::with_capacity(FLOOD);
    for connection in open {
        lifetimes.push(connection.await.unwrap());
    }
    lifetimes
}

#[test]
fn two_thousand_half_open_connections_are_cut_at_the_header_timeout_while_the_line_sorts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    set_api(
        &config,
        &format!(
            "header_timeout_s = {HEADER_TIMEOUT_S}\nmax_connections = 512\nmax_connections_per_address = {PER_CLIENT}"
        ),
    );
    let line = Line::start(&config);
    line.wait_for("the line to run", Duration::from_secs(180), |status| {
        status["frames"]["processed"].as_u64().unwrap() >= 3
    });
    limit_open_files(FLOOD as u64 + 1024);
    let server = server(&line);
    let timeout = Duration::from_secs(HEADER_TIMEOUT_S);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = line.daemon.status();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (base, token) = (line.base.clone(), line.token.clone());
        let lifetimes = runtime.block_on(flood(server, timeout * 10, move || {
            // Another client is answered while the flood holds its share.
            let (code, body) = call(&base, "GET", "/health", Some(&token), None);
            assert_eq!(code, 200, "{body}");
        }));
        let still_open = lifetimes.iter().filter(|life| life.is_none()).count();
        assert_eq!(still_open, 0, "round {rounds}: connections never closed");
        let lifetimes: Vec<Duration> = lifetimes.into_iter().flatten().collect();
        // The server held a full share of the flood until the header
        // timeout, and closed the rest as they came.
        let held = lifetimes
            .iter()
            .filter(|life| **life >= timeout / 2)
            .count();
        let longest = lifetimes.iter().max().unwrap();
        eprintln!(
            "round {rounds}: {held} connections held until the header timeout, {} closed at once, longest {longest:?}",
            FLOOD - held
        );
        assert!(held >= PER_CLIENT, "round {rounds}: only {held} held");
        assert!(
            *longest <= timeout + Duration::from_secs(8),
            "round {rounds}: a half-open connection lived {longest:?}"
        );
        // The line sorts on through the flood.
        let now = line.daemon.status();
        if now.frames.processed >= before.frames.processed + 10
            && now.counts.parts > before.counts.parts
        {
            eprintln!(
                "{rounds} floods: {} frames processed and {} parts decided meanwhile",
                now.frames.processed - before.frames.processed,
                now.counts.parts - before.counts.parts
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the line stopped sorting during the floods: {before:?} then {now:?}"
        );
    }
    line.stop();
}

#[test]
fn a_second_upload_while_one_is_arriving_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), false));
    let server = server(&line);
    let incoming = line.config.engine.data_dir.join("ota/incoming");

    // The first upload has begun: the server asked for its body.
    let mut first = connect_from(Ipv4Addr::LOCALHOST, server);
    first
        .write_all(upload_head(&line.token, 1000, true).as_bytes())
        .unwrap();
    read_continue(&mut first);

    let mut second = connect_from(Ipv4Addr::LOCALHOST, server);
    second
        .write_all(upload_head(&line.token, 10, false).as_bytes())
        .unwrap();
    second.write_all(b"0123456789").unwrap();
    let (code, body) = read_answer(&mut second);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("one at a time"), "{body}");

    // The first one ends (not a package: refused), and the next may come.
    first.write_all(&[b'x'; 1000]).unwrap();
    let (code, body) = read_answer(&mut first);
    assert!(code == 400 || code == 500, "{code}: {body}");
    let mut third = connect_from(Ipv4Addr::LOCALHOST, server);
    third
        .write_all(upload_head(&line.token, 10, false).as_bytes())
        .unwrap();
    third.write_all(b"0123456789").unwrap();
    let (code, body) = read_answer(&mut third);
    assert_ne!(code, 429, "{body}");
    assert_eq!(files_in(&incoming), Vec::<String>::new());
    line.stop();
}

#[test]
fn an_upload_larger_than_the_free_space_less_the_reserve_is_refused_before_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    // The whole free space as the reserve: any package is too large.
    let stat = rustix::fs::statvfs(dir.path()).unwrap();
    let free_mib = (stat.f_bavail * stat.f_frsize) >> 20;
    let data = dir.path().join("data");
    std::fs::write(
        config.with_file_name("system.toml"),
        format!("data_dir = {data:?}\n[ota]\nreserve_mib = {free_mib}\n"),
    )
    .unwrap();
    let line = Line::start(&config);
    let mut upload = connect_from(Ipv4Addr::LOCALHOST, server(&line));
    // Headers only: the answer must come without a byte of the body.
    upload
        .write_all(upload_head(&line.token, 1 << 30, false).as_bytes())
        .unwrap();
    let (code, body) = read_answer(&mut upload);
    assert_eq!(code, 507, "{body}");
    assert!(
        body.contains("ota.reserve_mib") && body.contains("1073741824 bytes"),
        "{body}"
    );
    assert_eq!(
        files_in(&line.config.engine.data_dir.join("ota/incoming")),
        Vec::<String>::new()
    );
    line.stop();
}

#[test]
fn the_eleventh_wrong_token_in_a_minute_from_one_address_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let line = Line::start(&write_config(dir.path(), false));
    let wrong = Some("wrong-token-0123456789");
    for attempt in 1..=10 {
        let (code, body) = call(&line.base, "GET", "/status", wrong, None);
        assert_eq!(code, 401, "attempt {attempt}: {body}");
    }
    let (code, body) = call(&line.base, "GET", "/status", wrong, None);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("too many calls"), "{body}");
    // Locked out: even the right token, so guessing on cannot tell.
    let (code, _) = line.call("GET", "/status", None);
    assert_eq!(code, 429);
    // Another address is not.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), server(&line));
    write!(
        other,
        "GET /health HTTP/1.1\r\nHost: box\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        line.token
    )
    .unwrap();
    let (code, body) = read_answer(&mut other);
    assert!(code == 200 || code == 503, "{code}: {body}");
    line.stop();
}

#[test]
fn a_call_or_upload_that_stalls_past_its_deadline_gets_408_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    set_api(&config, "request_timeout_s = 1\nupload_timeout_s = 2");
    let line = Line::start(&config);
    let server = server(&line);
    let incoming = line.config.engine.data_dir.join("ota/incoming");
    let before = std::fs::read_to_string(&config).unwrap();

    // A configuration whose body never finishes arriving.
    let mut put = connect_from(Ipv4Addr::LOCALHOST, server);
    write!(
        put,
        "PUT /config HTTP/1.1\r\nHost: box\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n[rules]",
        line.token
    )
    .unwrap();
    let (code, body) = read_answer(&mut put);
    assert_eq!(code, 408, "{body}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // An upload that stops half way: cut off at its deadline, its partial
    // file removed, and the next upload is not turned away as a second one.
    let mut upload = connect_from(Ipv4Addr::LOCALHOST, server);
    upload
        .write_all(upload_head(&line.token, 10 << 20, true).as_bytes())
        .unwrap();
    read_continue(&mut upload);
    upload.write_all(&vec![b'x'; 1 << 20]).unwrap();
    let (code, body) = read_answer(&mut upload);
    assert_eq!(code, 408, "{body}");
    assert_eq!(files_in(&incoming), Vec::<String>::new());
    let mut next = connect_from(Ipv4Addr::LOCALHOST, server);
    next.write_all(upload_head(&line.token, 10, false).as_bytes())
        .unwrap();
    next.write_all(b"0123456789").unwrap();
    let (code, body) = read_answer(&mut next);
    assert!(code != 429 && code != 408, "{code}: {body}");
    line.stop();
}

#[test]
fn an_upload_is_cut_off_when_the_free_space_falls_under_the_reserve_while_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    // A reserve 512 MiB under the free space: a 64 MiB package fits when
    // it is offered.
    let stat = rustix::fs::statvfs(dir.path()).unwrap();
    let free_mib = (stat.f_bavail * stat.f_frsize) >> 20;
    assert!(
        free_mib > 2048,
        "this test needs 2 GiB free, {free_mib} MiB are"
    );
    let data = dir.path().join("data");
    std::fs::write(
        config.with_file_name("system.toml"),
        format!(
            "data_dir = {data:?}\n[ota]\nreserve_mib = {}\n",
            free_mib - 512
        ),
    )
    .unwrap();
    let line = Line::start(&config);
    let incoming = line.config.engine.data_dir.join("ota/incoming");
    let mut upload = connect_from(Ipv4Addr::LOCALHOST, server(&line));
    upload
        .write_all(upload_head(&line.token, 64 << 20, true).as_bytes())
        .unwrap();
    read_continue(&mut upload);
    upload.write_all(&vec![b'x'; 1 << 20]).unwrap();

    // Something else on the data partition takes 1 GiB meanwhile.
    let hog = std::fs::File::create(dir.path().join("hog")).unwrap();
    rustix::fs::fallocate(&hog, rustix::fs::FallocateFlags::empty(), 0, 1 << 30).unwrap();
    // The rest of the first 8 MiB from another thread: the server stops
    // reading when it refuses, and a blocked write must not hold the answer.
    let mut sender = upload.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = sender.write_all(&vec![b'x'; 7 << 20]);
    });
    let (code, body) = read_answer(&mut upload);
    assert_eq!(code, 507, "{body}");
    assert!(
        body.contains("fell under its reserve") && body.contains("ota.reserve_mib"),
        "{body}"
    );
    drop(upload);
    sending.join().unwrap();
    drop(hog);
    std::fs::remove_file(dir.path().join("hog")).unwrap();
    assert_eq!(files_in(&incoming), Vec::<String>::new());
    line.stop();
}
