//! `kubectl attach` and `kubectl run -i` against a real `k3rs server` with its built-in
//! agent on a real containerd (needs root): stdin reaches a `stdin: true` container and its
//! output comes back live to every attached client, `stdinOnce` ends stdin with the first
//! session (`kubectl run -i --rm` gets the exit code and the pod is deleted), a terminal
//! for `tty: true`, and stdin and output survive a kill -9 restart of the server.

mod common;

use common::agent_server::{AgentServer as Server, data_dir_with_busybox};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IMAGE: &str = "k3rs.test/busybox:1";

/// A running kubectl whose stdout arrives line by line (lines without a newline, e.g. a
/// prompt, arrive with the next one).
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Session {
    fn spawn(server: &Server, args: &[&str]) -> Session {
        Self::spawn_cmd(server.cmd(args))
    }

    fn spawn_cmd(mut cmd: Command) -> Session {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Session {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: String::new(),
        }
    }

    fn send(&mut self, text: &str) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(text.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    /// True once a line containing `needle` arrived within `wait`.
    fn saw(&mut self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push_str(&l);
                    self.seen.push('\n');
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Waits (20 s) for a line containing `needle`; returns everything read so far.
    fn expect(&mut self, needle: &str, server: &Server) -> String {
        if !self.saw(needle, Duration::from_secs(20)) {
            panic!(
                "no {needle:?} from kubectl; got {:?}\n{}",
                self.seen,
                server.tail()
            );
        }
        self.seen.clone()
    }

    /// Closes kubectl's stdin and waits for it to exit (20 s).
    fn finish(mut self) -> std::process::ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "kubectl did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: echo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    stdin: true
    # Ticks on stderr: output that goes on while nobody is attached (and the agent is down).
    command: ["/bin/sh", "-c", "(i=0; while true; do echo tick $i >&2; i=$((i+1)); sleep 1; done) & echo ready; while read -r l; do echo \"got $l\"; done; echo eof"]
---
apiVersion: v1
kind: Pod
metadata: {name: term}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    stdin: true
    tty: true
    command: ["/bin/sh"]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: k3rs.test/busybox:1
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
"#;

#[test]
fn attach_feeds_stdin_streams_output_to_every_client_and_survives_a_kill_9_restart() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let (tmp, _) = data_dir_with_busybox(IMAGE);
    let mut server = Server::start(tmp.path());
    server.apply(PODS);

    // `kubectl run -i --rm`: stdinOnce, so the end of kubectl's stdin ends the shell's; the
    // container's exit code is kubectl's, and the pod is deleted.
    let mut run = Session::spawn(
        &server,
        &[
            "run",
            "t",
            "-i",
            "--rm",
            "--restart=Never",
            "--image",
            IMAGE,
            "--image-pull-policy=Never",
            "--pod-running-timeout=60s",
            "--",
            "sh",
        ],
    );
    run.send("echo hello; exit 3\n");
    let out = run.expect("hello", &server);
    assert!(out.lines().any(|l| l == "hello"), "{out:?}");
    let status = run.finish();
    assert_eq!(status.code(), Some(3), "kubectl run -i --rm exit status");
    server.wait_for("pod t deleted", 30, |s| {
        let out = s.kubectl(&["get", "pod", "t"]);
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
    });
    eprintln!("run -i --rm: {:?}", started.elapsed());

    // `kubectl run -it --rm` on a terminal of its own (script(1) gives it one): raw mode,
    // the terminal's size reaches the container's (resize), the exit code comes back.
    let line = format!(
        "stty cols 91 rows 33; exec kubectl --kubeconfig {} run t2 -it --rm --restart=Never \
         --image {IMAGE} --image-pull-policy=Never -- sh",
        server.kubeconfig().display()
    );
    let mut script = Command::new("script");
    script.args(["-qefc", &line, "/dev/null"]);
    let mut tty = Session::spawn_cmd(script);
    tty.expect("If you don't see a command prompt", &server);
    tty.send("echo mark$((40+2))\n");
    tty.expect("mark42", &server);
    // kubectl sends the size plus one, then the size (to force a redraw), beside the
    // input: ask until the last one is in.
    let mut n = 0;
    while !tty.saw("33 91", Duration::from_millis(500)) {
        assert!(n < 40, "terminal size never arrived: {:?}", tty.seen);
        n += 1;
        tty.send("busybox stty size\n");
    }
    tty.send("exit 4\n");
    assert_eq!(
        tty.finish().code(),
        Some(4),
        "kubectl run -it --rm exit status"
    );
    server.wait_for("pod t2 deleted", 30, |s| {
        let out = s.kubectl(&["get", "pod", "t2"]);
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
    });
    eprintln!("run -it --rm: {:?}", started.elapsed());

    // attach -i: a line in, its echo out, to this client and to a second one.
    server.wait_running("echo");
    let mut a = Session::spawn(&server, &["attach", "-i", "echo"]);
    a.send("ping\n");
    a.expect("got ping", &server);
    // A second client (output only) gets the output too, once it is attached.
    let mut watcher = Session::spawn(&server, &["attach", "echo"]);
    let mut n = 0;
    while !watcher.saw("got more", Duration::from_millis(500)) {
        assert!(n < 40, "the second client got nothing: {:?}", watcher.seen);
        n += 1;
        a.send(&format!("more {n}\n"));
    }
    a.expect(&format!("got more {n}"), &server);
    // The end of this client's stdin detaches it; the container's stdin stays open.
    assert!(a.finish().success());
    let mut b = Session::spawn(&server, &["attach", "-i", "echo"]);
    b.send("pong\n");
    b.expect("got pong", &server);
    watcher.expect("got pong", &server);
    drop(watcher);
    drop(b);
    let logs = server.ok(&["logs", "echo"]);
    let stdout: Vec<&str> = logs.lines().filter(|l| !l.starts_with("tick")).collect();
    assert_eq!(stdout[..3], ["ready", "got ping", "got more 1"], "{logs:?}");

    // tty: the shell runs on a terminal (kubectl cannot go raw without a terminal of its
    // own, so it asks for none; the container's setting decides, as the kubelet does).
    server.wait_running("term");
    let mut t = Session::spawn(&server, &["attach", "-i", "term"]);
    t.send("busybox tty; echo mark$((40+2))\n");
    let out = t.expect("mark42", &server);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    drop(t);

    // A container without stdin: attach -i streams its output and ignores the input, as
    // the CRI does.
    server.wait_running("plain");
    let mut p = Session::spawn(&server, &["attach", "-i", "plain"]);
    p.send("ignored\n");
    p.expect("tick", &server);
    drop(p);
    eprintln!("attach: {:?}", started.elapsed());

    // kill -9 and restart: the same container takes input and gives output again.
    let before = server.ok(&[
        "get",
        "pod",
        "echo",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let ticks = |logs: &str| {
        logs.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let before_ticks = ticks(&server.ok(&["logs", "echo"]));
    server.kill9();
    server.spawn();
    // The restarted agent reads the container's output again (no client attached).
    server.wait_for("ticks logged after the restart", 30, |s| {
        let out = s.kubectl(&["logs", "echo"]);
        ticks(&String::from_utf8_lossy(&out.stdout)) > before_ticks + 2
    });
    server.wait_for("the agent back", 60, |s| {
        s.kubectl(&["exec", "echo", "--", "echo", "hi"])
            .status
            .success()
    });
    let mut c = Session::spawn(&server, &["attach", "-i", "echo"]);
    c.send("after\n");
    c.expect("got after", &server);
    drop(c);
    let after = server.ok(&[
        "get",
        "pod",
        "echo",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    assert_eq!(before, after, "the container was replaced");
    let logs = server.ok(&["logs", "echo"]);
    assert!(
        logs.contains("got pong\n") && logs.contains("got after\n"),
        "{logs:?}"
    );
    eprintln!("attach test took {:?}", started.elapsed());
}
