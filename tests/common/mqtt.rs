//! A real `mosquitto` broker on a free loopback port (stopped and restarted on demand) and a
//! persistent-session subscriber to `vigil/#`, for the sink and daemon tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto not found (looked in /usr/sbin, /usr/local/sbin, /usr/bin): these tests need a \
         real broker; install it with `apt-get install -y mosquitto`"
    );
}

/// A mosquitto process on a loopback port; killed on drop.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// `users`: `(user, password)` pairs; empty = anonymous access.
    pub fn start(users: &[(&str, &str)]) -> Broker {
        Self::start_with(users, None)
    }

    /// Also a TLS listener on `tls.port` serving `tls`'s server certificate; the plain
    /// listener stays (the test subscriber uses it).
    pub fn start_tls(tls: &TestPki) -> Broker {
        Self::start_with(&[], Some(tls))
    }

    fn start_with(users: &[(&str, &str)], tls: Option<&TestPki>) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {d}/\nlog_dest stderr\n",
            port = free_port(),
            d = dir.path().display()
        );
        if let Some(t) = tls {
            let d = t.dir.path().display();
            conf.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
                t.port
            ));
        }
        if users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pw = dir.path().join("passwd");
            for (i, (u, p)) in users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                let st = cmd
                    .arg("-b")
                    .arg(&pw)
                    .arg(u)
                    .arg(p)
                    .status()
                    .expect("mosquitto_passwd (package mosquitto) is needed for the password test");
                assert!(st.success(), "mosquitto_passwd failed");
            }
            conf.push_str(&format!("allow_anonymous false\npassword_file {}\n", pw.display()));
        }
        // As root, mosquitto would switch to user `mosquitto`, who cannot read the temp dir.
        // SAFETY-free check: `id -u` tells whether we are root.
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
        if root {
            conf.push_str("user root\n");
        }
        let port: u16 = conf.split_whitespace().nth(1).unwrap().parse().unwrap();
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker { port, dir, child: None };
        b.restart();
        b
    }

    /// (Re)starts on the same port and config; waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("mosquitto exited with {st}; log:\n{}", self.log());
                }
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops it with SIGTERM (so it saves sessions to its persistence file) and waits.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// A throw-away certificate authority and a server certificate for 127.0.0.1 signed by it,
/// made with the `openssl` command (P-256 keys, valid two days), plus a port for the broker's
/// TLS listener. `other_ca` is a second, unrelated CA: a client trusting only it must refuse
/// the broker.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("the openssl command (package openssl) is needed for the TLS test");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other_ca"] {
            let (key, crt, subj) = (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN=vigil test {ca}"));
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
            openssl(&args);
        }
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        openssl(&args);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let sign = "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
                    -extfile server.ext";
        openssl(&sign.split_whitespace().collect::<Vec<_>>());
        TestPki { dir, port: free_port() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A rumqttc subscriber to `vigil/#` with a persistent session (so messages published while
/// it is reconnecting after a broker restart are queued for it, not lost to the test).
pub struct Subscriber {
    pub rx: Receiver<Msg>,
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    pub fn start(port: u16, id: &str, creds: Option<(&str, &str)>) -> Subscriber {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(5));
        if let Some((u, p)) = creds {
            opts.set_credentials(u, p);
        }
        let (client, mut conn) = Client::new(opts, 16);
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let (s, c) = (Arc::clone(&stop), Arc::clone(&connected));
        let thread = std::thread::Builder::new()
            .name("test-subscriber".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match conn.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            let _ = client.try_subscribe("vigil/#", QoS::AtLeastOnce);
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let _ =
                                tx.send(Msg { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain });
                        }
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                        _ => {}
                    }
                }
            })
            .unwrap();
        let sub = Subscriber { rx, stop, connected, thread: Some(thread) };
        wait_until("the subscriber's SUBACK", Duration::from_secs(10), || sub.connected.load(Ordering::Relaxed) > 0);
        sub
    }

    /// Collects messages until `done(all so far)` or the timeout (then panics with them).
    pub fn collect_until(&self, timeout: Duration, seen: &mut Vec<Msg>, mut done: impl FnMut(&[Msg]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out after {timeout:?}; got {:#?}", summary(seen));
            if let Ok(m) = self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                seen.push(m);
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn summary(msgs: &[Msg]) -> Vec<String> {
    msgs.iter().map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload))).collect()
}
