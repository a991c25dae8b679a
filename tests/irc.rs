//! The IRC sink end to end: the real `supergrep` binary posting to a real IRC server
//! (a private `ngircd` per test on a loopback port), watched by a small IRC client
//! that sits in the channel and records every line it receives, raw.
//!
//! Nothing waits for a fixed time or asserts on timing: tests wait for what stderr
//! says (`following path=…`, `IRC: joined #…`) or for what arrives in the channel,
//! bounded by `support::wait::PATIENCE`. "Nothing else was posted" is shown by appending
//! a last matching line and checking that it is the very next message.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::files::{append, TempLog};
use support::irc::{irc_clean, Client, Ircd, IrcdOptions, Said};
use support::proc::{supergrep, Proc};
use support::wait::PATIENCE;
use support::{free_port, hostname};

const BOLD_RED: &str = "\x0304\x02";
const RESET: &str = "\x0f";

/// What the default template `{host} {path}: {text}` makes of a line of `file`.
fn default_msg(file: &Path, text: &str) -> String {
    format!("{} {}: {}", hostname(), file.display(), irc_clean(text))
}

/// What an IRC client shows of a message: mIRC bold, reset, italic, underline and
/// reverse codes dropped, `\x03` with its colour numbers (`FG[,BG]`, up to two
/// digits each) dropped.
fn mirc_visible(s: &str) -> String {
    let cs: Vec<char> = s.chars().collect();
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < cs.len() && *i - start < 2 && cs[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut out = String::new();
    let mut i = 0;
    while i < cs.len() {
        match cs[i] {
            '\x02' | '\x0f' | '\x1d' | '\x1f' | '\x16' => i += 1,
            '\x03' => {
                i += 1;
                if digits(&mut i) && i + 1 < cs.len() && cs[i] == ',' && cs[i + 1].is_ascii_digit()
                {
                    i += 1;
                    digits(&mut i);
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Texts of what `nick` said.
fn texts_from(said: &[Said], nick: &str) -> Vec<String> {
    said.iter()
        .filter(|s| s.from == nick)
        .map(|s| s.text.clone())
        .collect()
}

/// A private server, and a client `watcher` in `channel` that records what is said.
fn ircd_with_watcher(channel: &str) -> (Ircd, Client) {
    let ircd = Ircd::start();
    let watcher = Client::connect(ircd.port, "watcher");
    watcher.join(channel);
    (ircd, watcher)
}

/// A server, a watcher in `channel`, a log file, and supergrep following it with
/// `--irc` to that channel (plus `extra` arguments), ready to have lines appended.
struct Setup {
    ircd: Ircd,
    watcher: Client,
    log: TempLog,
    sg: Proc,
}

fn setup(channel: &str, pattern: &str, extra: &[&str]) -> Setup {
    let (ircd, watcher) = ircd_with_watcher(channel);
    let log = TempLog::new("app.log");
    let url = ircd.url(channel);
    let mut args = vec!["-e", pattern, "--irc", &url];
    args.extend_from_slice(extra);
    args.push(log.s());
    let mut sg = supergrep(&args);
    sg.wait_irc_ready(&log.path, channel);
    Setup {
        ircd,
        watcher,
        log,
        sg,
    }
}

// ---------------------------------------------------------------------------------
// 1. Matches, in order, in the default template; --irc-format
// ---------------------------------------------------------------------------------

#[test]
fn matches_are_posted_in_order_with_the_default_template() {
    let mut t = setup("#logs", "ERROR", &[]);
    let lines = [
        "2024-05-01 ERROR first thing broke",
        "2024-05-01 INFO all is well",
        "2024-05-01 ERROR second thing broke",
        "debug: nothing to see",
        "third ERROR in the middle",
    ];
    append(&t.log.path, &(lines.join("\n") + "\n"));
    let matching: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("ERROR"))
        .collect();
    // The terminal output goes on as ever.
    assert_eq!(t.sg.lines(3), matching);
    t.watcher.wait_said("#logs", 3);
    // A last matching line: the next message must be it, so nothing else was posted.
    append(&t.log.path, "last ERROR\n");
    let said = t.watcher.wait_said("#logs", 4);
    let mut expected: Vec<String> = matching
        .iter()
        .map(|l| default_msg(&t.log.path, l))
        .collect();
    expected.push(default_msg(&t.log.path, "last ERROR"));
    assert_eq!(texts_from(&said, "supergrep"), expected);
    assert_eq!(said.len(), 4, "only supergrep spoke: {said:#?}");
}

#[test]
fn irc_format_template_shapes_the_message() {
    let t = setup(
        "#fmt",
        "WARN|ERROR",
        &["--irc-format", "{host}: {text} {{done}}"],
    );
    append(
        &t.log.path,
        "a WARN here\nnot this one\nan ERROR there\tafter a tab\n",
    );
    let said = t.watcher.wait_said("#fmt", 2);
    let host = hostname();
    assert_eq!(
        texts_from(&said, "supergrep"),
        vec![
            format!("{host}: a WARN here {{done}}"),
            format!("{host}: an ERROR there after a tab {{done}}"),
        ]
    );
    append(&t.log.path, "final ERROR\n");
    let said = t.watcher.wait_said("#fmt", 3);
    assert_eq!(said[2].text, format!("{host}: final ERROR {{done}}"));
    assert_eq!(said.len(), 3);
}

// ---------------------------------------------------------------------------------
// 2. Injection
// ---------------------------------------------------------------------------------

#[test]
fn log_lines_cannot_inject_irc_commands() {
    let mut t = setup("#inj", "INJ", &["--irc-burst", "10", "--irc-rate", "5"]);
    // The watcher also sits in #other: anything said or done there is seen.
    t.watcher.join("#other");
    t.watcher.send("TOPIC #inj :original topic");
    t.watcher.wait_for("the topic set", |m| {
        m.command == "TOPIC" && m.param(0) == "#inj"
    });

    // Written as one chunk; `\n` ends a log line, so `\r\n` inside a "line" makes two
    // log lines (both matching here), and each must become exactly one PRIVMSG.
    let written = concat!(
        "INJ a\rQUIT :bye\n",
        "INJ b\r\nPRIVMSG #other :hi INJ\n",
        "INJ c \x01ACTION waves\x01\n",
        "INJ d\rJOIN #other\rPART #inj :gone\rNICK evil\rTOPIC #inj :pwned\n",
        "\rPRIVMSG #other :INJ e\r\n",
        "INJ f \x00\x07\x1b[31mred\x1b[0m \x7f\u{85}\u{9b} tab\there \x02bold\x0f \x0304col\x03\n",
        "INJ g \r\r\r\rKILL supergrep :x\r\n",
    );
    append(&t.log.path, written);
    let expected: Vec<String> = written
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| l.contains("INJ"))
        .map(|l| default_msg(&t.log.path, l))
        .collect();
    assert_eq!(expected.len(), 8);
    t.watcher.wait_said("#inj", expected.len());
    // Still there, still talking: a later line arrives as the very next message.
    append(&t.log.path, "INJ later\n");
    let said = t.watcher.wait_said("#inj", expected.len() + 1);
    let mut all = expected.clone();
    all.push(default_msg(&t.log.path, "INJ later"));
    assert_eq!(texts_from(&said, "supergrep"), all);
    assert_eq!(said.len(), all.len(), "{said:#?}");
    for s in &said {
        assert!(
            !s.text.chars().any(char::is_control),
            "a control character reached the channel: {:?}",
            s.text
        );
    }

    // Nothing was said in #other, and no command other than PRIVMSG #inj (and the
    // JOIN #inj when it arrived) came from supergrep.
    assert_eq!(t.watcher.said("#other"), vec![], "something reached #other");
    let msgs = t.watcher.msgs();
    let other: Vec<String> = msgs
        .iter()
        .filter(|m| m.nick().starts_with("supergrep") || m.nick() == "evil")
        .filter(|m| !(m.command == "PRIVMSG" && m.param(0) == "#inj"))
        .filter(|m| !(m.command == "JOIN" && m.param(0) == "#inj"))
        .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
        .collect();
    assert_eq!(other, Vec::<String>::new(), "supergrep did something else");
    assert!(
        !msgs
            .iter()
            .any(|m| m.command == "TOPIC" && m.param(1) == "pwned"),
        "the topic was changed"
    );
    assert!(t.watcher.names("#inj").contains(&"supergrep".to_owned()));
    assert!(!t.watcher.names("#other").contains(&"supergrep".to_owned()));
    assert_eq!(t.sg.stderr_count(&["IRC: joined"]), 1);
    assert_eq!(t.sg.stderr_count(&["lost the server"]), 0);
}

// ---------------------------------------------------------------------------------
// 3. Long lines
// ---------------------------------------------------------------------------------

#[test]
fn long_lines_are_cut_to_one_valid_irc_line() {
    let mut t = setup("#long", "LONG", &[]);
    let ascii = format!("LONG {}", "x".repeat(1995));
    let multibyte = format!("LONG {}", "é".repeat(1995));
    let mixed = format!("LONG {}", "a€😀".repeat(400));
    assert_eq!(ascii.len(), 2000);
    assert_eq!(multibyte.chars().count(), 2000);
    append(&t.log.path, &format!("{ascii}\n{multibyte}\n{mixed}\n"));
    t.watcher.wait_said("#long", 3);
    append(&t.log.path, "LONG short\n");
    let said = t.watcher.wait_said("#long", 4);
    assert_eq!(said.len(), 4, "{said:#?}");
    assert!(said.iter().all(|s| s.from == "supergrep"));

    for (s, line) in said.iter().zip([&ascii, &multibyte, &mixed]) {
        let full = default_msg(&t.log.path, line);
        assert!(s.text.ends_with('…'), "not marked as cut: {:?}", s.text);
        let kept = s.text.strip_suffix('…').unwrap();
        let kept = kept.strip_suffix(RESET).unwrap_or(kept);
        assert!(
            full.starts_with(kept),
            "the cut message is not the start of the line: {kept:?}"
        );
        // Cut to fit, not to nothing: most of a 512-byte line is used.
        assert!(kept.len() > 300, "cut too short: {} bytes", kept.len());
    }
    assert_eq!(said[3].text, default_msg(&t.log.path, "LONG short"));

    // Every line the watcher received from the server fits IRC's limit and is UTF-8.
    for m in t.watcher.msgs() {
        assert!(
            m.raw.len() <= 512,
            "a {}-byte line: {:?}",
            m.raw.len(),
            String::from_utf8_lossy(&m.raw)
        );
        assert!(m.raw.ends_with(b"\r\n"));
        assert!(
            std::str::from_utf8(&m.raw).is_ok(),
            "not UTF-8: {:?}",
            String::from_utf8_lossy(&m.raw)
        );
    }
    assert_eq!(t.sg.stderr_count(&["lost the server"]), 0);
}

// ---------------------------------------------------------------------------------
// 4. Flood control
// ---------------------------------------------------------------------------------

/// `+N more matches for /LABEL/ in the last Ss (HOST: N)` → N, checking the rest.
fn summary_count(text: &str, label: &str, host: &str) -> Option<u64> {
    let re = regex::Regex::new(&format!(
        r"^\+(\d+) more matches for {} in the last (\d+)s \((.*)\)$",
        regex::escape(label)
    ))
    .unwrap();
    let c = re.captures(text)?;
    let n: u64 = c[1].parse().unwrap();
    assert_eq!(&c[3], format!("{host}: {n}"), "summary hosts: {text:?}");
    Some(n)
}

#[test]
fn a_flood_is_a_bounded_burst_plus_a_summary_with_the_true_count() {
    // The defaults: burst 4, 1 message a second.
    let mut t = setup("#flood", "FLOOD", &[]);
    let host = hostname();
    let lines: Vec<String> = (0..300)
        .map(|i| format!("FLOOD {i:03} disk on fire"))
        .collect();
    append(&t.log.path, &(lines.join("\n") + "\n"));
    let individual: Vec<String> = lines.iter().map(|l| default_msg(&t.log.path, l)).collect();

    // Until all 300 are accounted for: each posted alone or counted in a summary.
    let accounted = |said: &[Said]| -> u64 {
        said.iter()
            .map(|s| match summary_count(&s.text, "/FLOOD/", &host) {
                Some(n) => n,
                None => u64::from(individual.contains(&s.text)),
            })
            .sum()
    };
    t.watcher
        .wait_until("all 300 matches accounted for", |msgs| {
            let said: Vec<Said> = msgs
                .iter()
                .filter(|m| m.command == "PRIVMSG" && m.param(0) == "#flood")
                .map(|m| Said {
                    from: m.nick().to_owned(),
                    text: m.param(1).to_owned(),
                })
                .collect();
            accounted(&said) >= 300
        });
    // And supergrep is still there and talking afterwards.
    append(&t.log.path, "FLOOD later\n");
    let before = t.watcher.said("#flood").len();
    let said = t.watcher.wait_said("#flood", before + 1);
    let (flood, later) = said.split_at(before);
    assert_eq!(later[0].text, default_msg(&t.log.path, "FLOOD later"));
    assert_eq!(later.len(), 1);

    eprintln!("the flood as posted: {flood:#?}");
    assert!(flood.iter().all(|s| s.from == "supergrep"));
    assert_eq!(accounted(flood), 300, "{flood:#?}");
    let summaries: Vec<&Said> = flood
        .iter()
        .filter(|s| summary_count(&s.text, "/FLOOD/", &host).is_some())
        .collect();
    let singles: Vec<usize> = flood
        .iter()
        .filter_map(|s| individual.iter().position(|m| *m == s.text))
        .collect();
    assert_eq!(
        singles.len() + summaries.len(),
        flood.len(),
        "a message that is neither a line nor a summary: {flood:#?}"
    );
    assert!(!summaries.is_empty(), "no summary: {flood:#?}");
    // Bounded: the burst (4), maybe a few more lines as tokens came back while the
    // lines were still arriving, and a few summaries. 300 lines arrive as one batch
    // here, so in practice it is exactly 4 lines and 1 summary.
    assert!(
        singles.len() <= 8 && summaries.len() <= 3,
        "{} lines and {} summaries: {flood:#?}",
        singles.len(),
        summaries.len()
    );
    // Lines posted alone are the first ones, in order, each once.
    assert!(
        singles.windows(2).all(|w| w[0] < w[1]),
        "out of order: {singles:?}"
    );
    assert_eq!(singles[0], 0);

    // Not disconnected for flooding, nor for anything else.
    let msgs = t.watcher.msgs();
    assert!(
        !msgs
            .iter()
            .any(|m| m.nick() == "supergrep" && matches!(m.command.as_str(), "QUIT" | "PART")),
        "supergrep left"
    );
    assert!(t.watcher.names("#flood").contains(&"supergrep".to_owned()));
    assert_eq!(t.sg.stderr_count(&["lost the server"]), 0);
    assert_eq!(t.sg.stderr_count(&["IRC: joined"]), 1);
    let ircd_log = t.ircd.log.lock().unwrap().join("\n");
    assert!(
        !ircd_log.to_lowercase().contains("flood") && !ircd_log.contains("exhausted"),
        "ngircd complained:\n{ircd_log}"
    );
}

#[test]
fn identical_lines_are_coalesced_with_a_count() {
    let t = setup("#same", "SAME", &[]);
    // One write, so the 37 lines reach the sink as one batch: one message.
    append(&t.log.path, &"SAME disk full on /var\n".repeat(37));
    t.watcher.wait_said("#same", 1);
    append(&t.log.path, "SAME something else\n");
    let said = t.watcher.wait_said("#same", 2);
    assert_eq!(
        texts_from(&said, "supergrep"),
        vec![
            format!(
                "{} (×37)",
                default_msg(&t.log.path, "SAME disk full on /var")
            ),
            default_msg(&t.log.path, "SAME something else"),
        ]
    );
    assert_eq!(said.len(), 2);
}

// ---------------------------------------------------------------------------------
// 5. Colour
// ---------------------------------------------------------------------------------

#[test]
fn irc_color_wraps_each_matched_span_in_bold_red() {
    let t = setup("#color", "ERR[A-Z]+", &["--irc-color"]);
    append(
        &t.log.path,
        "plain ERROR here\néé → ERROR and ERRNO ✓ end\nnothing\nERRATA\n",
    );
    let said = t.watcher.wait_said("#color", 3);
    let prefix = format!("{} {}: ", hostname(), t.log.path.display());
    assert_eq!(
        texts_from(&said, "supergrep"),
        vec![
            format!("{prefix}plain {BOLD_RED}ERROR{RESET} here"),
            format!("{prefix}éé → {BOLD_RED}ERROR{RESET} and {BOLD_RED}ERRNO{RESET} ✓ end"),
            format!("{prefix}{BOLD_RED}ERRATA{RESET}"),
        ]
    );
    // And a client shows the text unchanged.
    assert_eq!(
        said.iter()
            .map(|s| mirc_visible(&s.text))
            .collect::<Vec<_>>(),
        vec![
            format!("{prefix}plain ERROR here"),
            format!("{prefix}éé → ERROR and ERRNO ✓ end"),
            format!("{prefix}ERRATA"),
        ]
    );
}

/// The `,42` right after the colour code is read by IRC clients as a background
/// colour (`\x03FG,BG`) and disappears: the matched text must come out as it is.
#[test]
fn irc_color_keeps_a_match_that_starts_with_a_comma_and_digits() {
    let t = setup("#csv", r",\d+,", &["--irc-color"]);
    append(&t.log.path, "id,42,failed\n");
    let said = t.watcher.wait_said("#csv", 1);
    let prefix = format!("{} {}: ", hostname(), t.log.path.display());
    assert_eq!(mirc_visible(&said[0].text), format!("{prefix}id,42,failed"));
}

// ---------------------------------------------------------------------------------
// 6. Reconnect
// ---------------------------------------------------------------------------------

#[test]
fn reconnects_and_rejoins_after_the_server_restarts() {
    let mut t = setup("#restart", "ERROR", &[]);
    append(&t.log.path, "ERROR before the restart\n");
    let said = t.watcher.wait_said("#restart", 1);
    assert_eq!(
        said[0].text,
        default_msg(&t.log.path, "ERROR before the restart")
    );

    t.ircd.kill();
    t.sg.wait_stderr(&["IRC: lost the server"]);
    t.ircd.start_again();
    let watcher = Client::connect(t.ircd.port, "watcher2");
    watcher.join("#restart");
    t.sg.wait_stderr_n(&["IRC: joined #restart"], 2);

    append(&t.log.path, "ERROR after the restart\n");
    let said = watcher.wait_said("#restart", 1);
    assert_eq!(
        said,
        vec![Said {
            from: "supergrep".into(),
            text: default_msg(&t.log.path, "ERROR after the restart"),
        }]
    );
    assert!(watcher.names("#restart").contains(&"supergrep".to_owned()));
}

// ---------------------------------------------------------------------------------
// 7. Nick in use
// ---------------------------------------------------------------------------------

/// A squatter holding the nick `supergrep` and watching `#nick` on `ircd`, then
/// supergrep posting the ERROR lines of a new log there, ready:
/// `(squatter, log, supergrep)`.
fn nick_squatted(ircd: &Ircd) -> (Client, TempLog, Proc) {
    let squatter = Client::connect(ircd.port, "supergrep");
    squatter.join("#nick");
    let log = TempLog::new("app.log");
    let url = ircd.url("#nick");
    let mut sg = supergrep(&["-e", "ERROR", "--irc", &url, log.s()]);
    sg.wait_irc_ready(&log.path, "#nick");
    (squatter, log, sg)
}

#[test]
fn takes_another_nick_when_its_own_is_in_use() {
    let ircd = Ircd::start();
    let (squatter, log, _sg) = nick_squatted(&ircd);
    squatter.wait_for("supergrep_ joining", |m| {
        m.command == "JOIN" && m.nick() == "supergrep_"
    });
    append(&log.path, "ERROR with another nick\n");
    let said = squatter.wait_said("#nick", 1);
    assert_eq!(
        said,
        vec![Said {
            from: "supergrep_".into(),
            text: default_msg(&log.path, "ERROR with another nick"),
        }]
    );
}

/// ngircd's default `MaxNickLength` is 9, exactly the length of `supergrep`: the
/// fallback `supergrep_` is refused with 432 (erroneous nickname), and appending more
/// `_` can never help.
#[test]
fn takes_another_nick_when_its_own_is_in_use_and_nicks_are_short() {
    let ircd = Ircd::start_with(IrcdOptions {
        max_nick_length: None,
        ..IrcdOptions::default()
    });
    let (squatter, log, _sg) = nick_squatted(&ircd);
    append(&log.path, "ERROR with another nick\n");
    let said = squatter.wait_said("#nick", 1);
    assert!(said[0].from.starts_with("supergre"), "{said:?}");
    assert_eq!(
        said[0].text,
        default_msg(&log.path, "ERROR with another nick")
    );
}

// ---------------------------------------------------------------------------------
// 8. The hub's [[irc]] sinks
// ---------------------------------------------------------------------------------

/// `supergrep serve` on any port with the config file `config`, following `log`.
fn serve_with_config(config: &Path, log: &TempLog) -> Proc {
    supergrep(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        log.s(),
    ])
}

/// A config with one `[[irc]]` sink: `PHP Fatal` lines to `#deploys` on `ircd`, and
/// `more` keys of the sink.
fn php_fatal_sink(ircd: &Ircd, more: &str) -> String {
    format!(
        "[[irc]]\nserver = \"irc://127.0.0.1:{}\"\nchannel = \"#deploys\"\ninclude = [\"PHP Fatal\"]\n{more}",
        ircd.port
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("supergrep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn hub_irc_sink_posts_matches_from_followed_files() {
    let (ircd, watcher) = ircd_with_watcher("#deploys");
    let log = TempLog::new("php.log");
    let config = write_config(log.dir(), &php_fatal_sink(&ircd, ""));
    let mut hub = serve_with_config(&config, &log);
    hub.wait_irc_ready(&log.path, "#deploys");
    hub.wait_stderr(&["serving http://127.0.0.1:"]);

    let lines = [
        "PHP Fatal error: Allowed memory size exhausted in /srv/a.php on line 3",
        "PHP Warning: Undefined variable $x in /srv/b.php on line 9",
        "PHP Notice: whatever",
        "PHP Fatal error: Uncaught Error: Call to undefined function f()",
    ];
    append(&log.path, &(lines.join("\n") + "\n"));
    watcher.wait_said("#deploys", 2);
    append(&log.path, "PHP Fatal error: the last one\n");
    let said = watcher.wait_said("#deploys", 3);
    assert_eq!(
        texts_from(&said, "supergrep"),
        vec![
            default_msg(&log.path, lines[0]),
            default_msg(&log.path, lines[3]),
            default_msg(&log.path, "PHP Fatal error: the last one"),
        ]
    );
    assert_eq!(said.len(), 3);
}

/// SIGTERM stops the hub's sink too: it says QUIT (the hub used to exit under it, and
/// the server told the channel the connection had just gone), and the hub exits 0.
#[test]
fn hub_irc_sink_says_quit_on_sigterm() {
    let (ircd, watcher) = ircd_with_watcher("#deploys");
    let log = TempLog::new("php.log");
    let config = write_config(log.dir(), &php_fatal_sink(&ircd, ""));
    let mut hub = serve_with_config(&config, &log);
    hub.wait_irc_ready(&log.path, "#deploys");
    hub.wait_stderr(&["serving http://127.0.0.1:"]);
    hub.signal("TERM");
    let quit = watcher.wait_for("supergrep's QUIT", |m| {
        m.command == "QUIT" && m.nick() == "supergrep"
    });
    assert!(quit.param(0).contains("supergrep done"), "{quit:?}");
    assert_eq!(hub.exit_code_within(PATIENCE), Some(0));
}

#[test]
fn hub_rejects_a_bad_irc_url_naming_the_sink() {
    let log = TempLog::new("php.log");
    for (config, name) in [
        (
            "[[irc]]\nserver = \"http://127.0.0.1:6667\"\nchannel = \"#deploys\"\ninclude = [\"x\"]\n",
            "irc[0]",
        ),
        (
            "[[irc]]\nserver = \"irc://127.0.0.1:6667\"\nchannel = \"#ok\"\n\
             [[irc]]\nserver = \"irc://127.0.0.1:6667\"\nchannel = \"#bad channel\"\n",
            "irc[1]",
        ),
    ] {
        let path = write_config(log.dir(), config);
        let mut hub = serve_with_config(&path, &log);
        let code = hub.exit_code_within(PATIENCE);
        let stderr = hub.stderr_text();
        assert_eq!(code, Some(2), "{config}\nstderr:\n{stderr}");
        assert!(stderr.contains(name), "{name} not named:\n{stderr}");
        assert!(stderr.contains("invalid IRC URL"), "{stderr}");
    }
}

/// `format = "text"` (or `"json"`) passes the config check, but the IRC sink renders
/// only templates: every message is empty, and nothing reaches the channel.
#[test]
fn hub_irc_sink_with_format_text_posts_or_is_refused() {
    let (ircd, watcher) = ircd_with_watcher("#deploys");
    let log = TempLog::new("php.log");
    let config = write_config(log.dir(), &php_fatal_sink(&ircd, "format = \"text\"\n"));
    let mut hub = serve_with_config(&config, &log);
    // Either refused at start, naming the key…
    if let Some(code) = hub.exit_code_within(Duration::from_secs(2)) {
        let stderr = hub.stderr_text();
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("irc[0].format"), "{stderr}");
        return;
    }
    // …or the line arrives, as text.
    hub.wait_irc_ready(&log.path, "#deploys");
    append(&log.path, "PHP Fatal error: boom\n");
    let said = watcher.wait_said("#deploys", 1);
    assert!(said[0].text.contains("PHP Fatal error: boom"), "{said:?}");
}

// ---------------------------------------------------------------------------------
// 9. An unreachable server
// ---------------------------------------------------------------------------------

#[test]
fn an_unreachable_irc_server_does_not_stop_terminal_output() {
    let port = free_port();
    let log = TempLog::new("app.log");
    let url = format!("irc://127.0.0.1:{port}/#void");
    let mut sg = supergrep(&["-e", "ERROR", "--irc", &url, log.s()]);
    sg.wait_stderr(&["following", log.s()]);
    sg.wait_stderr(&["cannot connect to IRC server", &port.to_string()]);
    append(&log.path, "ERROR one\nfine\nERROR two\n");
    assert_eq!(sg.lines(2), vec!["ERROR one", "ERROR two"]);
    // More than the IRC sink's queue (1000) can hold: the terminal must not wait on it.
    let many: Vec<String> = (0..1500).map(|i| format!("ERROR {i}")).collect();
    append(&log.path, &(many.join("\n") + "\n"));
    assert_eq!(sg.lines(1500), many);
    assert_eq!(sg.child.try_wait().unwrap(), None, "supergrep exited");
}

/// `--no-follow` waits for the IRC sink to post what it still has; with the server
/// unreachable that is forever (reconnecting with a backoff that tops out at 60 s).
#[test]
fn no_follow_with_an_unreachable_irc_server_still_prints_and_ends() {
    let port = free_port();
    let log = TempLog::new("app.log");
    std::fs::write(&log.path, "ERROR a\nok\nERROR b\n").unwrap();
    let url = format!("irc://127.0.0.1:{port}/#void");
    let mut sg = supergrep(&["--no-follow", "-e", "ERROR", "--irc", &url, log.s()]);
    assert_eq!(sg.lines(2), vec!["ERROR a", "ERROR b"]);
    let code = sg.exit_code_within(PATIENCE);
    assert_eq!(
        code,
        Some(0),
        "still running; stderr:\n{}",
        sg.stderr_text()
    );
}

// ---------------------------------------------------------------------------------
// More: --no-follow, KICK, a channel that cannot be joined
// ---------------------------------------------------------------------------------

#[test]
fn no_follow_posts_what_matched_then_quits() {
    let (ircd, watcher) = ircd_with_watcher("#once");
    let log = TempLog::new("app.log");
    std::fs::write(&log.path, "ERROR a\nok\nERROR b\n").unwrap();
    let url = ircd.url("#once");
    let mut sg = supergrep(&["--no-follow", "-e", "ERROR", "--irc", &url, log.s()]);
    assert_eq!(sg.lines(2), vec!["ERROR a", "ERROR b"]);
    let quit = watcher.wait_for("supergrep's QUIT", |m| {
        m.command == "QUIT" && m.nick() == "supergrep"
    });
    assert!(quit.param(0).contains("supergrep done"), "{quit:?}");
    assert_eq!(sg.exit_code_within(PATIENCE), Some(0));
    assert_eq!(
        texts_from(&watcher.said("#once"), "supergrep"),
        vec![
            default_msg(&log.path, "ERROR a"),
            default_msg(&log.path, "ERROR b"),
        ]
    );
}

#[test]
fn rejoins_after_a_kick() {
    let mut t = setup("#kick", "ERROR", &[]);
    // The watcher made the channel, so it is an operator.
    t.watcher.send("KICK #kick supergrep :out");
    t.watcher.wait_for("the kick", |m| {
        m.command == "KICK" && m.param(1) == "supergrep"
    });
    t.sg.wait_stderr_n(&["IRC: joined #kick"], 2);
    append(&t.log.path, "ERROR after the kick\n");
    let said = t.watcher.wait_said("#kick", 1);
    assert_eq!(
        texts_from(&said, "supergrep"),
        vec![default_msg(&t.log.path, "ERROR after the kick")]
    );
}

/// A channel with a key supergrep does not know: 475, "cannot join". The code says
/// it will "try later", but nothing ever tries again: once the key is gone, it
/// still does not join, and matches wait forever.
#[test]
fn tries_again_to_join_a_channel_it_could_not_join() {
    let (ircd, watcher) = ircd_with_watcher("#locked");
    watcher.send("MODE #locked +k sesame");
    watcher.wait_for("the key set", |m| m.command == "MODE" && m.param(1) == "+k");
    let log = TempLog::new("app.log");
    let url = ircd.url("#locked");
    let mut sg = supergrep(&["-e", "ERROR", "--irc", &url, log.s()]);
    sg.wait_stderr(&["following", log.s()]);
    sg.wait_stderr(&["IRC: cannot join #locked"]);
    watcher.send("MODE #locked -k sesame");
    watcher.wait_for("the key removed", |m| {
        m.command == "MODE" && m.param(1) == "-k"
    });
    append(&log.path, "ERROR waiting to be posted\n");
    sg.wait_stderr(&["IRC: joined #locked"]);
    let said = watcher.wait_said("#locked", 1);
    assert_eq!(
        said[0].text,
        default_msg(&log.path, "ERROR waiting to be posted")
    );
}
