//! The web UI in a real headless Chromium, driven over the Chrome DevTools Protocol
//! (see `tests/support/cdp.rs`), against the real `supergrep serve` following real files.
//!
//! No timing assertions: every check polls the DOM until it holds, bounded by a
//! generous timeout. Screenshots land in `target/web-screenshots/`.
//!
//! `cargo test --test web -- --ignored` runs the benchmark: 5,000 matching lines/s
//! for 60 s into one tab, reporting JS heap, long tasks and frames.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cdp::{Browser, Page};
use support::files::append;
use support::hub::Hub;
use support::stream_id;

/// The lines shown (log lines only, not markers or notes), as text.
const LINES: &str = "[...document.querySelectorAll('#lines .line:not(.marker):not(.note) .text')].map(e => e.textContent)";

struct Setup {
    dir: tempfile::TempDir,
    hub: Hub,
    page: Page,
    // Dropped last: the page's socket goes first, then Chromium.
    _browser: Browser,
}

impl Setup {
    /// A hub following `files` (created empty in a tempdir) and a page on its UI.
    async fn new(files: &[&str]) -> Setup {
        Setup::with(files, None, "").await
    }

    /// Same, with a config file (`config` is TOML; `{dir}` stands for the tempdir)
    /// and a query string for the page.
    async fn with(files: &[&str], config: Option<&str>, query: &str) -> Setup {
        Setup::start(files, config, &[], query).await
    }

    /// Same, with more arguments for `supergrep serve`.
    async fn start(files: &[&str], config: Option<&str>, extra: &[&str], query: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.path().join(f)).collect();
        for p in &paths {
            std::fs::write(p, "").unwrap();
        }
        let mut args: Vec<String> = Vec::new();
        if let Some(config) = config {
            let cfg = dir.path().join("supergrep.toml");
            let text = config.replace("{dir}", &dir.path().display().to_string());
            std::fs::write(&cfg, text).unwrap();
            args.push("--config".into());
            args.push(cfg.display().to_string());
        } else {
            args.extend(paths.iter().map(|p| p.display().to_string()));
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let follows: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let hub = Hub::start_following(&arg_refs, &follows);
        let browser = Browser::start();
        let mut page = browser.page().await;
        // SUPERGREP_WEB_DIR=web: try the UI files on disk without rebuilding the hub.
        if let Some(dir) = std::env::var_os("SUPERGREP_WEB_DIR") {
            page.serve_web_from(Path::new(&dir)).await;
        }
        page.goto(&hub.http_url(&format!("/{query}"))).await;
        wait_ready(&mut page).await;
        Setup {
            dir,
            hub,
            page,
            _browser: browser,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn append(&self, name: &str, text: &str) {
        append(&self.path(name), text);
    }
}

/// Connected, and the hub has applied the filter shown in the fields.
async fn wait_ready(page: &mut Page) {
    page.wait_for(
        "the page to connect and subscribe",
        "window.__supergrep && window.__supergrep.ready()",
        "[document.querySelector('#status').textContent, document.querySelector('#include-error') && document.querySelector('#include-error').textContent]",
    )
    .await;
}

/// Waits until exactly `want` lines are shown, then returns them.
async fn wait_lines(page: &mut Page, want: usize) -> Vec<String> {
    let v = page
        .wait_for(
            &format!("{want} lines"),
            &format!("(() => {{ const l = {LINES}; return l.length === {want} ? l : null; }})()"),
            LINES,
        )
        .await;
    strings(&v)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Clicks Download and returns the file name and text it would save.
async fn download(page: &mut Page) -> (String, String) {
    let saved = page
        .eval(
            "new Promise(done => { let blob; URL.createObjectURL = b => { blob = b; return 'blob:test'; }; \
             HTMLAnchorElement.prototype.click = function () { blob.text().then(t => done([this.download, t])); }; \
             document.querySelector('#download').click(); })",
        )
        .await;
    (
        saved[0].as_str().unwrap().to_owned(),
        saved[1].as_str().unwrap().to_owned(),
    )
}

/// Waits until a line's context is open again (the clicked line marked in it).
async fn context_opens(page: &mut Page) {
    page.wait_for(
        "the context again",
        "document.querySelector('.ctx-line.self')",
        "document.querySelector('#lines').innerText",
    )
    .await;
}

/// Waits until no context block is left.
async fn context_closes(page: &mut Page, why: &str) {
    page.wait_for(
        why,
        "document.querySelectorAll('.context').length === 0",
        "document.querySelectorAll('.context').length",
    )
    .await;
}

async fn blur(page: &mut Page) {
    page.eval("document.activeElement && document.activeElement.blur()")
        .await;
}

#[tokio::test]
async fn filter_shows_only_matching_lines_with_highlights() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "ERROR|FATAL").await;
    wait_ready(&mut s.page).await;
    s.append(
        "app.log",
        "10:00 INFO started\n10:01 ERROR disk full on /dev/sda1\n10:02 DEBUG nothing\n10:03 FATAL out of memory\n",
    );
    let lines = wait_lines(&mut s.page, 2).await;
    assert_eq!(
        lines,
        [
            "10:01 ERROR disk full on /dev/sda1",
            "10:03 FATAL out of memory"
        ]
    );
    // A later match arrives after the earlier non-matching lines would have.
    // (Offsets count characters: the emoji are two UTF-16 units each in JS.)
    s.append(
        "app.log",
        "10:04 INFO fine\n10:05 😀🎉 é ERROR again 𝄞 FATAL\n",
    );
    let lines = wait_lines(&mut s.page, 3).await;
    assert!(lines
        .iter()
        .all(|l| !l.contains("INFO") && !l.contains("DEBUG")));

    // The highlight covers exactly the matched text.
    let marks = s
        .page
        .eval("[...document.querySelectorAll('#lines .line')].map(r => [...r.querySelectorAll('mark.hit')].map(m => m.textContent))")
        .await;
    assert_eq!(
        marks,
        serde_json::json!([["ERROR"], ["FATAL"], ["ERROR", "FATAL"]])
    );
    // Time, host and file on every line.
    let row = s
        .page
        .eval("(() => { const r = document.querySelector('#lines .line'); return [r.querySelector('.ts').textContent, r.querySelector('.host').textContent, r.querySelector('.file').textContent, r.querySelector('.file').title]; })()")
        .await;
    let row = strings(&row);
    assert!(
        regex::Regex::new(r"^\d\d:\d\d:\d\d\.\d{3}$")
            .unwrap()
            .is_match(&row[0]),
        "time {:?}",
        row[0]
    );
    let id = stream_id(&s.path("app.log"));
    let (host, path) = id.split_once(':').unwrap();
    assert_eq!(row[1], host);
    assert_eq!(row[2], "app.log");
    assert_eq!(row[3], path);
    // The filter is in the URL.
    let href = s.page.eval("location.href").await;
    assert!(href.as_str().unwrap().contains("q=ERROR%7CFATAL"), "{href}");

    // Screenshots: light (looked at by a person) and dark.
    s.page.color_scheme("light").await;
    s.page.type_into("#highlight", "disk|memory").await;
    blur(&mut s.page).await;
    s.page
        .wait_for(
            "the highlight pattern to colour the lines",
            "document.querySelectorAll('#lines mark.hl0').length === 2",
            "document.querySelectorAll('#lines mark').length",
        )
        .await;
    s.page.screenshot("filter-light").await;
    s.page.color_scheme("dark").await;
    s.page.screenshot("filter-dark").await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn pause_holds_new_lines_and_resume_shows_them() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "tick").await;
    wait_ready(&mut s.page).await;
    s.append("app.log", "tick 1\n");
    wait_lines(&mut s.page, 1).await;

    // Space pauses when not typing.
    blur(&mut s.page).await;
    s.page.key(" ").await;
    s.page
        .wait_for(
            "the pause button to say paused",
            "document.querySelector('#pause').getAttribute('aria-pressed') === 'true'",
            "document.querySelector('#pause').outerHTML",
        )
        .await;
    s.append("app.log", "tick 2\ntick 3\nother\ntick 4\n");
    let shown = s
        .page
        .wait_for(
            "3 new",
            "(() => { const e = document.querySelector('#new-count'); return !e.hidden && e.textContent === '3 new' ? e.textContent : null; })()",
            "[document.querySelector('#new-count').hidden, document.querySelector('#new-count').textContent]",
        )
        .await;
    assert_eq!(shown, "3 new");
    assert_eq!(
        s.page.eval(&format!("{LINES}.length")).await,
        1,
        "nothing moves while paused"
    );

    s.page.click("#pause").await;
    let lines = wait_lines(&mut s.page, 4).await;
    assert_eq!(lines, ["tick 1", "tick 2", "tick 3", "tick 4"]);
    s.page
        .wait_for(
            "the new-count to go",
            "document.querySelector('#new-count').hidden",
            "document.querySelector('#new-count').textContent",
        )
        .await;

    // `c` clears; `/` goes to the filter.
    blur(&mut s.page).await;
    s.page.key("c").await;
    wait_lines(&mut s.page, 0).await;
    s.page.key("/").await;
    assert_eq!(s.page.eval("document.activeElement.id").await, "include");

    // A hidden tab counts new matches in its title.
    blur(&mut s.page).await;
    s.page
        .eval("Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }); document.dispatchEvent(new Event('visibilitychange'))")
        .await;
    s.append("app.log", "tick 5\ntick 6\n");
    s.page
        .wait_for(
            "(2) in the title",
            "document.title === '(2) supergrep'",
            "document.title",
        )
        .await;
    s.page
        .eval("Object.defineProperty(document, 'hidden', { configurable: true, get: () => false }); document.dispatchEvent(new Event('visibilitychange'))")
        .await;
    assert_eq!(s.page.eval("document.title").await, "supergrep");
    assert_eq!(wait_lines(&mut s.page, 2).await, ["tick 5", "tick 6"]);
    s.page.assert_no_problems();
}

#[tokio::test]
async fn scrolling_up_holds_the_view_still() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "row").await;
    wait_ready(&mut s.page).await;
    let text: String = (1..=400).map(|i| format!("row {i}\n")).collect();
    s.append("app.log", &text);
    let last = "(() => { const l = [...document.querySelectorAll('#lines .line .text')]; return l.length ? l[l.length - 1].textContent : null; })()";
    s.page
        .wait_for(
            "400 lines, the last one shown",
            &format!("window.__supergrep.stats().rows === 400 && {last} === 'row 400'"),
            "window.__supergrep.stats()",
        )
        .await;
    // Only the rows near the viewport are in the DOM.
    let rows = s
        .page
        .eval("document.querySelectorAll('#lines .line').length")
        .await;
    assert!(rows.as_u64().unwrap() < 400, "{rows} rows in the DOM");

    // Up to the top: the oldest lines get their rows, and the view holds.
    s.page
        .eval("document.querySelector('#lines').scrollTop = 0")
        .await;
    s.page
        .wait_for(
            "the first line at the top",
            "[...document.querySelectorAll('#lines .line .text')].some(e => e.textContent === 'row 1')",
            "[document.querySelector('#lines').scrollTop, document.querySelectorAll('#lines .line').length]",
        )
        .await;
    s.append("app.log", "row 401\nrow 402\nrow 403\n");
    s.page
        .wait_for(
            "3 new",
            "document.querySelector('#new-count').textContent === '3 new' && !document.querySelector('#new-count').hidden",
            "[document.querySelector('#new-count').textContent, window.__supergrep.stats()]",
        )
        .await;
    let still = s
        .page
        .eval("[document.querySelector('#lines').scrollTop, window.__supergrep.stats().rows]")
        .await;
    assert_eq!(still, serde_json::json!([0, 400]), "nothing moved");

    // Back at the bottom: following again, with the held lines.
    s.page
        .eval("(() => { const b = document.querySelector('#lines'); b.scrollTop = b.scrollHeight; })()")
        .await;
    s.page
        .wait_for(
            "the held lines",
            &format!("window.__supergrep.stats().rows === 403 && {last} === 'row 403' && document.querySelector('#new-count').hidden"),
            "[window.__supergrep.stats(), document.querySelector('#new-count').textContent]",
        )
        .await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn reload_restores_the_view_from_the_url() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "alpha").await;
    s.page.click("button.add[data-add=include]").await;
    s.page
        .type_into("#includes .field:nth-child(2) input", "beta")
        .await;
    s.page.type_into("#exclude", "skip").await;
    s.page.type_into("#highlight", "gamma").await;
    s.page.click("#icase").await; // case-sensitive now
    s.page.click("#wrap").await; // no wrapping
    s.page.type_into("#cap", "1000").await;
    blur(&mut s.page).await;
    wait_ready(&mut s.page).await;
    s.append(
        "app.log",
        "alpha one\nbeta two gamma\nalpha skip\nALPHA upper\ndelta\nbeta last\n",
    );
    let want = ["alpha one", "beta two gamma", "beta last"];
    assert_eq!(wait_lines(&mut s.page, 3).await, want);

    let check = r#"(() => ({
        include: [...document.querySelectorAll('#includes input')].map(i => i.value),
        exclude: [...document.querySelectorAll('#excludes input')].map(i => i.value),
        highlight: [...document.querySelectorAll('#highlights input')].map(i => i.value),
        icase: document.querySelector('#icase').checked,
        wrap: document.querySelector('#wrap').checked,
        wrapped: document.querySelector('#lines').classList.contains('wrap'),
        cap: document.querySelector('#cap').value,
        marks: [...document.querySelectorAll('#lines mark.hl')].map(m => m.textContent),
    }))()"#;
    let expected = serde_json::json!({
        "include": ["alpha", "beta"], "exclude": ["skip"], "highlight": ["gamma"],
        "icase": false, "wrap": false, "wrapped": false, "cap": "1000", "marks": ["gamma"],
    });
    // Highlights are painted by a worker, after the lines: waited for, not raced.
    let marks = "document.querySelectorAll('#lines mark.hl').length > 0";
    s.page.wait_for("the highlight marks", marks, check).await;
    assert_eq!(s.page.eval(check).await, expected);

    // Reload: the same view, and the hub's backlog fills it again at once.
    let url = s.page.eval("location.href").await;
    s.page.reload().await;
    wait_ready(&mut s.page).await;
    assert_eq!(wait_lines(&mut s.page, 3).await, want);
    s.page.wait_for("the highlight marks", marks, check).await;
    assert_eq!(s.page.eval(check).await, expected);

    // A pasted link opens the same view too.
    s.page.goto("about:blank").await;
    s.page.goto(url.as_str().unwrap()).await;
    wait_ready(&mut s.page).await;
    assert_eq!(wait_lines(&mut s.page, 3).await, want);
    s.page.wait_for("the highlight marks", marks, check).await;
    assert_eq!(s.page.eval(check).await, expected);
    s.page.assert_no_problems();
}

#[tokio::test]
async fn html_in_a_log_line_is_shown_as_text() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "inject").await;
    wait_ready(&mut s.page).await;
    let evil = r#"inject <img src=x onerror=alert(1)> <b>bold</b> <script>alert(2)</script> &amp;"#;
    s.append("app.log", &format!("{evil}\n"));
    let lines = wait_lines(&mut s.page, 1).await;
    assert_eq!(lines, [evil]);
    let counts = s
        .page
        .eval("[document.querySelectorAll('img').length, document.querySelectorAll('#lines b, #lines script').length, document.querySelector('#lines').innerText.includes('<img src=x onerror=alert(1)>')]")
        .await;
    assert_eq!(counts, serde_json::json!([0, 0, true]));
    s.page.assert_no_problems();
}

#[tokio::test]
async fn an_invalid_regex_shows_the_hubs_error_next_to_its_field() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "ok").await;
    wait_ready(&mut s.page).await;
    s.page.type_into("#exclude", "a(").await;
    let msg = s
        .page
        .wait_for(
            "the hub's error next to #exclude",
            "document.querySelector('#exclude-error').textContent",
            "[...document.querySelectorAll('.field-error')].map(e => e.textContent)",
        )
        .await;
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("\"a(\"") && msg.contains("unclosed"),
        "message: {msg}"
    );
    assert_eq!(
        s.page
            .eval("document.querySelector('#include-error').textContent")
            .await,
        "",
        "only the bad field shows it"
    );
    // The previous filter stays live meanwhile.
    s.append("app.log", "ok 1\n");
    wait_lines(&mut s.page, 1).await;
    // Fixed: the error goes.
    s.page.type_into("#exclude", "a(b)").await;
    wait_ready(&mut s.page).await;
    assert_eq!(
        s.page
            .eval("document.querySelector('#exclude-error').textContent")
            .await,
        ""
    );
    s.page.assert_no_problems();
}

#[tokio::test]
async fn clicking_a_line_shows_its_context_inline() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "boom").await;
    wait_ready(&mut s.page).await;
    let mut text = String::new();
    for i in 1..=40 {
        if i == 20 {
            text.push_str("ctx line 20 ERROR boom\n");
        } else {
            text.push_str(&format!("ctx line {i}\n"));
        }
    }
    s.append("app.log", &text);
    wait_lines(&mut s.page, 1).await;
    s.page.click("#lines .line .text").await;
    let ctx = s
        .page
        .wait_for(
            "the context block",
            "(() => { const c = document.querySelector('#lines .line .context'); if (!c || !c.querySelector('.ctx-line')) return null; return { lines: [...c.querySelectorAll('.ctx-line .text')].map(e => e.textContent), self: [...c.querySelectorAll('.ctx-line.self .text')].map(e => e.textContent) }; })()",
            "document.querySelector('#lines').innerText",
        )
        .await;
    let lines = strings(&ctx["lines"]);
    let want: Vec<String> = (1..=40)
        .map(|i| {
            if i == 20 {
                "ctx line 20 ERROR boom".to_owned()
            } else {
                format!("ctx line {i}")
            }
        })
        .collect();
    assert_eq!(lines, want, "20 before and 20 after, from the file");
    assert_eq!(strings(&ctx["self"]), ["ctx line 20 ERROR boom"]);
    // A header says which stream and which line.
    let head = s
        .page
        .eval("document.querySelector('.context .ctx-where').textContent")
        .await;
    let seq = s
        .page
        .eval("document.querySelector('.ctx-line.self').dataset.seq")
        .await;
    assert_eq!(
        head.as_str().unwrap(),
        format!(
            "{}:app.log · line #{}",
            stream_id(&s.path("app.log")).split_once(':').unwrap().0,
            seq.as_str().unwrap()
        )
    );
    // The clicked row and its line in the context are both in sight (the block
    // scrolls on its own), and nothing covers the latter.
    let in_sight = "(() => { const box = document.querySelector('#lines').getBoundingClientRect(); \
        const row = document.querySelector('#lines .line.open').getBoundingClientRect(); \
        const self = document.querySelector('.ctx-line.self'); const r = self.getBoundingClientRect(); \
        const body = self.closest('.ctx-body').getBoundingClientRect(); \
        const top = document.elementFromPoint(r.left + 30, r.top + r.height / 2); \
        return row.top >= box.top && row.top < box.bottom && r.top >= body.top && r.bottom <= body.bottom \
          && r.top >= box.top && r.bottom <= box.bottom && self.contains(top); })()";
    s.page
        .wait_for(
            "the clicked row and its line in sight",
            in_sight,
            "document.querySelector('#lines').innerText",
        )
        .await;
    s.page.screenshot("context").await;

    // A click on another line of the context centres it on that one.
    s.page.click(".ctx-line[data-seq] .text").await; // the first: ctx line 1
    let first = s
        .page
        .wait_for(
            "the context around ctx line 1",
            "(() => { const t = [...document.querySelectorAll('.ctx-line.self .text')].map(e => e.textContent); return t.length === 1 && t[0] === 'ctx line 1' ? document.querySelectorAll('.ctx-line').length : null; })()",
            "document.querySelector('.context').innerText",
        )
        .await;
    assert_eq!(first, 21, "line 1 and the 20 after it");
    s.page
        .wait_for(
            "the new line in sight",
            in_sight,
            "document.querySelector('.context').innerText",
        )
        .await;
    let head = s
        .page
        .eval("document.querySelector('.context .ctx-where').textContent")
        .await;
    assert!(
        head.as_str().unwrap().ends_with(&format!(
            "line #{}",
            seq.as_str().unwrap().parse::<u64>().unwrap() - 19
        )),
        "{head}"
    );

    // Esc closes it.
    blur(&mut s.page).await;
    s.page.key("Escape").await;
    s.page
        .wait_for(
            "the context to close on Esc",
            "document.querySelectorAll('.context').length === 0 && !document.querySelector('#lines .line.open')",
            "document.querySelectorAll('.context').length",
        )
        .await;
    // So does its close button.
    s.page.click("#lines .line .text").await;
    context_opens(&mut s.page).await;
    s.page.click(".context .ctx-close").await;
    context_closes(&mut s.page, "the context to close on its button").await;
    // And a click on the line again.
    s.page.click("#lines .line .text").await;
    context_opens(&mut s.page).await;
    s.page.click("#lines .line .ts").await;
    context_closes(&mut s.page, "the context to close").await;

    // Held with new lines: the "N new" pill covers none of the lines (the view can
    // scroll past it).
    let more: String = (1..=60).map(|i| format!("boom more {i}\n")).collect();
    s.append("app.log", &more);
    wait_lines(&mut s.page, 61).await;
    s.page
        .eval("document.querySelector('#lines').scrollTop = 0")
        .await;
    s.page
        .wait_for(
            "the view to hold",
            "document.querySelector('#held-reason').textContent.includes('scrolled up')",
            "[document.querySelector('#lines').scrollTop, document.querySelector('#held-reason').textContent]",
        )
        .await;
    s.append("app.log", "boom newer\n");
    s.page
        .wait_for(
            "the new-count pill",
            "!document.querySelector('#new-count').hidden",
            "document.querySelector('#new-count').textContent",
        )
        .await;
    let clear = s
        .page
        .wait_for(
            "the last line above the pill",
            "(() => { const b = document.querySelector('#lines'); b.scrollTop = b.scrollHeight; \
              const rows = b.querySelectorAll('.line'); const last = rows[rows.length - 1].getBoundingClientRect(); \
              const pill = document.querySelector('#new-count').getBoundingClientRect(); \
              return last.bottom <= pill.top ? [last.bottom, pill.top] : null; })()",
            "[document.querySelector('#lines').scrollTop, document.querySelector('#new-count').getBoundingClientRect().top]",
        )
        .await;
    assert!(clear.is_array());
    s.page.assert_no_problems();
}

#[tokio::test]
async fn exclude_leaves_lines_out() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#exclude", "noise").await;
    wait_ready(&mut s.page).await;
    s.append("app.log", "keep 1\nnoise 2\nkeep 3\nmore NOISE\nkeep 4\n");
    assert_eq!(
        wait_lines(&mut s.page, 3).await,
        ["keep 1", "keep 3", "keep 4"]
    );
    // Download: what it would save.
    let (name, text) = download(&mut s.page).await;
    assert!(
        name.starts_with("supergrep-") && name.ends_with(".log"),
        "{name}"
    );
    let path = s.path("app.log");
    let id = stream_id(&path);
    let got: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    let want: Vec<String> = ["keep 1", "keep 3", "keep 4"]
        .iter()
        .map(|t| format!("{id}:{t}"))
        .collect();
    assert_eq!(got, want, "{text}");
    s.page.assert_no_problems();
}

#[tokio::test]
async fn the_token_comes_from_the_url_or_a_prompt() {
    let mut s = Setup::start(
        &["app.log"],
        None,
        &["--token", "s3cret"],
        "?token=s3cret&q=tok",
    )
    .await;
    assert_eq!(
        s.page
            .eval("[location.search.includes('token'), sessionStorage.getItem('supergrep.token'), document.querySelector('#include').value]")
            .await,
        serde_json::json!([false, "s3cret", "tok"]),
        "the token is kept for the tab, out of the address bar"
    );
    s.append("app.log", "tok 1\n");
    wait_lines(&mut s.page, 1).await;
    // A reload finds it in the tab's session storage.
    s.page.reload().await;
    wait_ready(&mut s.page).await;
    wait_lines(&mut s.page, 1).await;

    // Another tab has no token: the hub refuses it, and the page asks for one.
    let mut other = s._browser.new_page(&s.hub.http_url("/?q=tok")).await;
    other
        .wait_for(
            "the token prompt",
            "document.querySelector('#token-dialog') && document.querySelector('#token-dialog').open && document.querySelector('#status').dataset.state === 'unauthorized'",
            "[document.querySelector('#status').textContent]",
        )
        .await;
    other.type_into("#token-input", "s3cret").await;
    other.click("#token-ok").await;
    wait_ready(&mut other).await;
    assert_eq!(wait_lines(&mut other, 1).await, ["tok 1"]);
}

#[tokio::test]
async fn stream_picker_selects_one_log_set() {
    let config = r#"
[[set]]
name = "web"
paths = ["{dir}/web.log"]

[[set]]
name = "db"
paths = ["{dir}/db.log"]
"#;
    let mut s = Setup::with(&["web.log", "db.log"], Some(config), "").await;
    s.page
        .wait_for(
            "both sets in the picker",
            "document.querySelector('input[data-sel=\"web\"]') && document.querySelector('input[data-sel=\"db\"]')",
            "document.querySelector('#picker').innerText",
        )
        .await;
    s.page.click("input[data-sel=\"db\"]").await;
    wait_ready(&mut s.page).await;
    s.append("web.log", "from web 1\n");
    s.append("db.log", "from db 1\n");
    s.append("web.log", "from web 2\n");
    s.append("db.log", "from db 2\n");
    assert_eq!(wait_lines(&mut s.page, 2).await, ["from db 1", "from db 2"]);
    let files = s
        .page
        .eval("[...document.querySelectorAll('#lines .line .file')].map(e => e.textContent)")
        .await;
    assert_eq!(files, serde_json::json!(["db.log", "db.log"]));
    let href = s.page.eval("location.href").await;
    assert!(href.as_str().unwrap().contains("s=db"), "{href}");
    s.page.screenshot("streams").await;
    // Lines/s per stream come from /api/streams.
    s.page
        .wait_for(
            "a rate next to the set",
            "(() => { const r = document.querySelector('input[data-sel=\"db\"]').parentElement.querySelector('.rate'); return r && /\\/s$/.test(r.textContent); })()",
            "document.querySelector('#picker').innerText",
        )
        .await;

    // A single file of the other set, by its id.
    s.page.click("input[data-sel=\"db\"]").await;
    let web_id = stream_id(&s.path("web.log"));
    s.page.click(&format!("input[data-sel=\"{web_id}\"]")).await;
    wait_ready(&mut s.page).await;
    // The new filter starts from the hub's backlog for it.
    assert_eq!(
        wait_lines(&mut s.page, 2).await,
        ["from web 1", "from web 2"]
    );
    s.page.assert_no_problems();
}

#[tokio::test]
async fn markers_and_links() {
    let config = r#"
source_url = "https://src.example.com/repo/{path}#L{line}"

[[set]]
name = "default"
paths = ["{dir}/app.log"]
"#;
    let mut s = Setup::with(&["app.log"], Some(config), "").await;
    s.page
        .wait_for(
            "the source link template",
            "fetch('/api/ui').then(r => r.json()).then(u => !!u.source_url)",
            "location.href",
        )
        .await;
    s.append("app.log", "before the deploy\n");
    wait_lines(&mut s.page, 1).await;
    s.hub.mark("deploy 4521 by dog");
    let marker = s
        .page
        .wait_for(
            "the marker divider",
            "(() => { const m = document.querySelector('#lines .line.marker'); return m && m.textContent; })()",
            "document.querySelector('#lines').innerText",
        )
        .await;
    assert!(marker.as_str().unwrap().contains("deploy 4521 by dog"));
    s.append(
        "app.log",
        "panic at src/server/mod.rs:42 see https://example.com/x?y=1. and <a href=\"javascript:alert(1)\">x</a>\n",
    );
    wait_lines(&mut s.page, 2).await;
    let order = s
        .page
        .eval("[...document.querySelectorAll('#lines .line')].map(r => r.classList.contains('marker') ? 'marker' : r.querySelector('.text').textContent.slice(0, 9))")
        .await;
    assert_eq!(
        order,
        serde_json::json!(["before th", "marker", "panic at "])
    );
    let links = s
        .page
        .eval("[...document.querySelectorAll('#lines a')].map(a => [a.textContent, a.href, a.target, a.rel])")
        .await;
    assert_eq!(
        links,
        serde_json::json!([
            [
                "src/server/mod.rs:42",
                "https://src.example.com/repo/src/server/mod.rs#L42",
                "_blank",
                "noopener noreferrer"
            ],
            [
                "https://example.com/x?y=1",
                "https://example.com/x?y=1",
                "_blank",
                "noopener noreferrer"
            ]
        ])
    );
    s.page.screenshot("marker").await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn source_links_stay_under_the_configured_prefix() {
    let config = r#"
source_url = "https://src.example.com/repo/{path}#L{line}"

[[set]]
name = "default"
paths = ["{dir}/app.log"]
"#;
    let mut s = Setup::with(&["app.log"], Some(config), "").await;
    s.page
        .wait_for(
            "the source link template",
            "fetch('/api/ui').then(r => r.json()).then(u => !!u.source_url)",
            "location.href",
        )
        .await;
    // `../` climbs out of the repository: no link. `./`, a leading `/` and
    // characters a URL reserves are normalised and escaped.
    s.append(
        "app.log",
        "up ../secret.rs:1 here ./src/a.rs:2 abs /home/ci/src/b.rs:3 odd src/c++/x@2.rs:5\n",
    );
    wait_lines(&mut s.page, 1).await;
    let links = s
        .page
        .wait_for(
            "the source links",
            "(() => { const a = [...document.querySelectorAll('#lines a')].map(a => [a.textContent, a.href]); return a.length ? a : null; })()",
            "document.querySelector('#lines').innerHTML",
        )
        .await;
    assert_eq!(
        links,
        serde_json::json!([
            ["./src/a.rs:2", "https://src.example.com/repo/src/a.rs#L2"],
            [
                "/home/ci/src/b.rs:3",
                "https://src.example.com/repo/home/ci/src/b.rs#L3"
            ],
            [
                "src/c++/x@2.rs:5",
                "https://src.example.com/repo/src/c%2B%2B/x%402.rs#L5"
            ]
        ])
    );
    s.page.assert_no_problems();
}

/// Each highlight pattern is a worker of its own: a link with many `h=` starts at
/// most 16, and the fields past them say why they do nothing.
#[tokio::test]
async fn highlight_patterns_past_the_cap_are_refused_in_their_field() {
    let query: Vec<String> = (0..17).map(|i| format!("h=p{i}")).collect();
    let mut s = Setup::with(&["app.log"], None, &format!("?{}", query.join("&"))).await;
    s.append("app.log", "p0 and p16\n");
    wait_lines(&mut s.page, 1).await;
    let errors = s
        .page
        .wait_for(
            "the 17th highlight field to say it is past the cap",
            "(() => { const e = [...document.querySelectorAll('#highlights .field-error')] \
               .map(e => e.textContent); return e[16] ? e : null })()",
            "document.querySelector('#highlights').innerHTML",
        )
        .await;
    let errors: Vec<String> = serde_json::from_value(errors).unwrap();
    assert!(errors[16].contains("at most 16"), "{errors:?}");
    assert!(errors[..16].iter().all(String::is_empty), "{errors:?}");
    s.page.assert_no_problems();
}

#[tokio::test]
async fn a_highlight_pattern_that_backtracks_for_ever_does_not_freeze_the_tab() {
    // `(a+)+b` on forty `a`s and no `b` takes a backtracking engine 2^40 steps.
    let mut s = Setup::with(&["app.log"], None, "?h=(a%2B)%2Bb&h=later").await;
    s.append("app.log", &format!("{}!\n", "a".repeat(40)));
    wait_lines(&mut s.page, 1).await;
    // The tab answers, and goes on showing lines and the other pattern's highlights.
    assert_eq!(s.page.eval("6 * 7").await, serde_json::json!(42));
    s.append("app.log", "a later line\n");
    wait_lines(&mut s.page, 2).await;
    s.page
        .wait_for(
            "the other highlight pattern to mark the later line",
            "[...document.querySelectorAll('#lines mark.hl1')].map(m => m.textContent).join() === 'later'",
            "document.querySelector('#lines').innerHTML",
        )
        .await;
    // The runaway pattern is stopped, and its field says so.
    let said = s
        .page
        .wait_for(
            "the runaway pattern's field to say it was stopped",
            "document.querySelector('#highlight-error').textContent",
            "document.querySelector('#highlights').innerHTML",
        )
        .await;
    assert!(said.as_str().unwrap().contains("too slow"), "{said}");
    assert_eq!(
        s.page
            .eval("document.querySelectorAll('#lines mark.hl0').length")
            .await,
        serde_json::json!(0)
    );
    s.page.assert_no_problems();
}

#[tokio::test]
async fn reconnecting_shows_no_line_twice() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "rc").await;
    wait_ready(&mut s.page).await;
    s.append("app.log", "rc 1\nrc 2\n");
    wait_lines(&mut s.page, 2).await;
    s.page.eval("window.__supergrep.disconnect()").await;
    s.page
        .wait_for(
            "a second connection",
            "window.__supergrep.stats().connections >= 2 && window.__supergrep.ready()",
            "[window.__supergrep.stats(), document.querySelector('#status').textContent]",
        )
        .await;
    s.append("app.log", "rc 3\n");
    assert_eq!(wait_lines(&mut s.page, 3).await, ["rc 1", "rc 2", "rc 3"]);
    s.page.assert_no_problems();
}

/// Whether every pattern field is wide enough for its placeholder (measured with the
/// field's own font).
const PLACEHOLDERS_FIT: &str = "(() => { const c = document.createElement('canvas').getContext('2d'); \
    return [...document.querySelectorAll('input.pattern')].every(i => { const st = getComputedStyle(i); \
    c.font = `${st.fontSize} ${st.fontFamily}`; const room = i.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight); \
    return c.measureText(i.placeholder).width <= room; }); })()";

#[tokio::test]
async fn a_narrow_screen_opens_the_picker_over_the_lines() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.viewport(400, 800).await;
    s.append("app.log", "narrow 1\nnarrow 2\n");
    wait_lines(&mut s.page, 2).await;
    let picker_shown = "(() => { const p = document.querySelector('#picker'); const r = p.getBoundingClientRect(); \
        if (p.hidden || r.width === 0) return false; \
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); \
        return p.contains(top) && r.right <= innerWidth; })()";
    assert_eq!(
        s.page.eval(picker_shown).await,
        false,
        "closed at first on a narrow screen"
    );
    // The header is compact and the fields still show their placeholders.
    let header = s
        .page
        .eval("document.querySelector('#bar').getBoundingClientRect().height")
        .await;
    assert!(
        header.as_f64().unwrap() <= 160.0,
        "the header takes {header} of 800 px"
    );
    assert_eq!(s.page.eval(PLACEHOLDERS_FIT).await, true);

    s.page.click("#picker-toggle").await;
    s.page
        .wait_for(
            "the picker over the lines",
            picker_shown,
            "[document.querySelector('#picker').hidden, document.querySelector('#picker').getBoundingClientRect().toJSON()]",
        )
        .await;
    assert_eq!(
        s.page
            .eval("document.querySelector('#picker-toggle').getAttribute('aria-expanded')")
            .await,
        "true"
    );
    s.page.screenshot("narrow-picker").await;
    // Esc closes it, and so does the Streams button.
    s.page.key("Escape").await;
    s.page
        .wait_for(
            "the picker to close on Esc",
            &format!("!{picker_shown}"),
            "document.querySelector('#picker').hidden",
        )
        .await;
    s.page.click("#picker-toggle").await;
    s.page
        .wait_for(
            "the picker again",
            picker_shown,
            "document.querySelector('#picker').hidden",
        )
        .await;
    s.page.click("#picker-toggle").await;
    s.page
        .wait_for(
            "the picker to close on the button",
            &format!("!{picker_shown}"),
            "document.querySelector('#picker').hidden",
        )
        .await;

    // Keyboard hints: shown with a mouse on a wide screen, never on a touch screen.
    s.page.viewport(1280, 800).await;
    let hints = "getComputedStyle(document.querySelector('#foot .keys')).display !== 'none'";
    assert_eq!(s.page.eval(hints).await, true);
    s.page.touch(true).await;
    s.page
        .wait_for(
            "no keyboard hints on a touch screen",
            &format!("!({hints})"),
            "document.querySelector('#foot').innerText",
        )
        .await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn a_wrapped_line_continues_right_of_its_prefix() {
    let mut s = Setup::new(&["app.log"]).await;
    let long: String = (0..60).map(|i| format!("word{i} ")).collect();
    s.append("app.log", &format!("short line\nlong {long}end\nafter\n"));
    wait_lines(&mut s.page, 3).await;
    // The left edges of the text's line boxes, and where the prefix ends and starts.
    let edges = "(() => { const row = [...document.querySelectorAll('#lines .line')].find(r => r.querySelector('.text').textContent.startsWith('long')); \
        const range = document.createRange(); range.selectNodeContents(row.querySelector('.text')); \
        const lefts = [...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.left)); \
        return { lefts, prefixEnd: row.querySelector('.file').getBoundingClientRect().right, prefixStart: row.querySelector('.ts').getBoundingClientRect().left }; })()";
    let wide = s.page.eval(edges).await;
    let lefts: Vec<f64> = wide["lefts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(lefts.len() >= 2, "the long line wraps: {wide}");
    let prefix_end = wide["prefixEnd"].as_f64().unwrap();
    assert!(
        lefts.iter().all(|&l| l >= prefix_end),
        "every line of the text starts right of the prefix: {wide}"
    );
    s.page.screenshot("wrapped-1280").await;

    // Too narrow for a text column: the continuation hangs in from the time.
    s.page.viewport(400, 800).await;
    let narrow = s
        .page
        .wait_for(
            "the narrow layout",
            &format!("(() => {{ const e = {edges}; return e.lefts.length > 2 ? e : null; }})()"),
            edges,
        )
        .await;
    let lefts: Vec<f64> = narrow["lefts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let start = narrow["prefixStart"].as_f64().unwrap();
    assert!(
        lefts[1..].iter().all(|&l| l >= start + 12.0),
        "continuation lines hang in from the time: {narrow}"
    );
    s.page.screenshot("wrapped-400").await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn an_empty_view_says_what_it_waits_for() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.type_into("#include", "wanted").await;
    wait_ready(&mut s.page).await;
    // Lines come in and none match: the view says what it waits for, and how many
    // lines a second the hub checks for it (from /api/streams, polled).
    let waiting =
        regex::Regex::new(r"^waiting for lines matching /wanted/ \(([0-9.k]+) lines/s checked\)$")
            .unwrap();
    let deadline = Instant::now() + support::wait::PATIENCE;
    let text = loop {
        s.append("app.log", "other 1\nother 2\nother 3\n");
        let text = s
            .page
            .eval("document.querySelector('#empty').hidden ? '' : document.querySelector('#empty').textContent")
            .await;
        let text = text.as_str().unwrap_or_default().to_owned();
        if let Some(c) = waiting.captures(&text) {
            if c[1] != *"0" {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "the empty view says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.page.screenshot("empty-waiting").await;
    assert_eq!(s.page.eval(&format!("{LINES}.length")).await, 0, "{text}");
    // A match: the note goes.
    s.append("app.log", "the wanted one\n");
    assert_eq!(wait_lines(&mut s.page, 1).await, ["the wanted one"]);
    assert_eq!(
        s.page.eval("document.querySelector('#empty').hidden").await,
        true
    );
    s.page.assert_no_problems();
}

#[tokio::test]
async fn a_glob_that_matches_no_file_says_so() {
    let config = r#"
[[set]]
name = "later"
paths = ["{dir}/later-*.log"]
"#;
    let mut s = Setup::with(&[], Some(config), "").await;
    let glob = format!("{}/later-*.log", s.dir.path().display());
    let want = format!("no file matches {glob} yet");
    let shown = s
        .page
        .wait_for(
            "the empty view to name the glob",
            "(() => { const e = document.querySelector('#empty'); return e.hidden ? null : e.textContent; })()",
            "document.querySelector('#empty').textContent",
        )
        .await;
    assert_eq!(shown, want.as_str());
    let picker = s
        .page
        .wait_for(
            "the picker to name the glob",
            "[...document.querySelectorAll('#picker-files li.none')].map(e => e.textContent).join('|')",
            "document.querySelector('#picker').innerText",
        )
        .await;
    assert_eq!(picker, want.as_str());
    s.page.screenshot("empty-glob").await;
    // A file appears: its lines show.
    std::fs::write(s.path("later-1.log"), "").unwrap();
    s.page
        .wait_for(
            "the new file in the picker",
            "document.querySelectorAll('#picker-files input[data-sel]').length === 1",
            "document.querySelector('#picker').innerText",
        )
        .await;
    s.append("later-1.log", "here now\n");
    assert_eq!(wait_lines(&mut s.page, 1).await, ["here now"]);
    s.page.assert_no_problems();
}

#[tokio::test]
async fn a_stream_glob_from_the_url_is_listed_with_what_it_selects() {
    // The host part of the ids, for a glob like one pasted from a link.
    let probe = tempfile::tempdir().unwrap();
    let id = stream_id(&probe.path().join("x.log"));
    let host = id.split_once(':').unwrap().0.to_owned();
    let glob = format!("{host}:*app.log");
    let mut s = Setup::with(&["app.log", "auth.log"], None, &format!("?s={glob}")).await;
    s.append("auth.log", "auth 1\n");
    s.append("app.log", "app 1\n");
    assert_eq!(
        wait_lines(&mut s.page, 1).await,
        ["app 1"],
        "the glob filters"
    );
    let sel = serde_json::to_string(&glob).unwrap();
    // Listed as a selection with its rate, not as "selected, not present now".
    let listed = format!(
        "(() => {{ const box = document.querySelector(`#picker-globs input[data-sel=${{CSS.escape({sel})}}]`); \
         if (!box || document.querySelector('#picker-globs-box').hidden) return null; \
         const rate = box.parentElement.querySelector('.rate').textContent; \
         return {{ checked: box.checked, rate, other: !document.querySelector('#picker-other-box').hidden }}; }})()"
    );
    let deadline = Instant::now() + support::wait::PATIENCE;
    let shown = loop {
        s.append("app.log", "app more\n");
        let v = s.page.eval(&listed).await;
        if v["rate"]
            .as_str()
            .is_some_and(|r| r.ends_with("/s") && r != "0/s")
        {
            break v;
        }
        assert!(Instant::now() < deadline, "the glob in the picker: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown["checked"], true);
    assert_eq!(shown["other"], false, "not 'selected, not present now'");
    // The file it takes shows as covered, the other one does not.
    let covered = s
        .page
        .eval("[...document.querySelectorAll('#picker-files input[data-sel]')].map(b => [b.parentElement.querySelector('.name').textContent, b.indeterminate])")
        .await;
    assert_eq!(
        covered,
        serde_json::json!([["app.log", true], ["auth.log", false]])
    );
    s.page.screenshot("streams-glob").await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn a_stream_glob_that_would_backtrack_for_ever_does_not_freeze_the_tab() {
    // As a regex, `*?*?…!` is `(.*.)(.*.)…!`: on a long id that does not end in `!`
    // a backtracking engine tries every way to cut it, and never finishes.
    let file = "a-log-file-with-a-rather-long-name-for-the-glob-test.log";
    let evil = format!("*:{}!", "*?".repeat(16));
    let query = format!("?s=*:*.log&s={}", evil.replace('?', "%3F"));
    let mut s = Setup::with(&[file], None, &query).await;
    s.append(file, "still shown\n");
    assert_eq!(wait_lines(&mut s.page, 1).await, ["still shown"]);
    assert_eq!(s.page.eval("6 * 7").await, serde_json::json!(42));
    // It selects nothing, and says so; the other glob takes the file.
    let sel = serde_json::to_string(&evil).unwrap();
    let listed = s
        .page
        .eval(&format!(
            "[!!document.querySelector(`#picker-other input[data-sel=${{CSS.escape({sel})}}]`), \
             !!document.querySelector(`#picker-globs input[data-sel='*:*.log']`)]"
        ))
        .await;
    assert_eq!(listed, serde_json::json!([true, true]));
    s.page.assert_no_problems();
}

#[tokio::test]
async fn the_theme_button_switches_light_and_dark_and_remembers() {
    let mut s = Setup::new(&["app.log"]).await;
    s.append("app.log", "themed 1\n");
    wait_lines(&mut s.page, 1).await;
    // The colour of the page, and whether it is a dark one.
    let dark = "(() => { const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number); return r + g + b < 300; })()";
    // No choice made: the OS setting.
    s.page.color_scheme("light").await;
    assert_eq!(s.page.eval(dark).await, false);
    s.page.color_scheme("dark").await;
    assert_eq!(s.page.eval(dark).await, true);
    s.page.color_scheme("light").await;
    assert_eq!(s.page.eval(dark).await, false);
    // The button: dark, whatever the OS says, kept across a reload.
    s.page.click("#theme").await;
    s.page
        .wait_for(
            "the dark theme",
            dark,
            "getComputedStyle(document.body).backgroundColor",
        )
        .await;
    assert_eq!(
        s.page.eval("localStorage.getItem('supergrep.theme')").await,
        "dark"
    );
    s.page.screenshot("theme-dark").await;
    s.page.reload().await;
    wait_ready(&mut s.page).await;
    assert_eq!(s.page.eval(dark).await, true, "kept across a reload");
    // Again: light, with a dark OS.
    s.page.color_scheme("dark").await;
    s.page.click("#theme").await;
    s.page
        .wait_for(
            "the light theme",
            &format!("!{dark}"),
            "getComputedStyle(document.body).backgroundColor",
        )
        .await;
    assert_eq!(
        s.page.eval("localStorage.getItem('supergrep.theme')").await,
        "light"
    );
    s.page.screenshot("theme-light").await;
    s.page.assert_no_problems();
}

#[tokio::test]
async fn the_header_is_one_row_at_1920_px_and_an_error_does_not_reflow_it() {
    let mut s = Setup::new(&["app.log"]).await;
    s.page.viewport(1920, 900).await;
    s.append("app.log", "wide 1\nwide 2\n");
    wait_lines(&mut s.page, 2).await;
    // Every part of the header on the first row (the graph included).
    let one_row = "(() => { const parts = [...document.querySelector('#bar').children].map(e => e.getBoundingClientRect()); \
        const bottom = Math.min(...parts.map(r => r.bottom)); return parts.every(r => r.top < bottom); })()";
    let height = "document.querySelector('#bar').getBoundingClientRect().height";
    s.page
        .wait_for("the header on one row", one_row, "[...document.querySelector('#bar').children].map(e => [e.id || e.className, e.getBoundingClientRect().top])")
        .await;
    let before = s.page.eval(height).await;
    // The peak is written beside the graph, not over it.
    let peak = s
        .page
        .wait_for(
            "the peak beside the graph",
            "(() => { const p = document.querySelector('#graph-peak'); const g = document.querySelector('#graph').getBoundingClientRect(); \
              return /^peak \\d/.test(p.textContent) && p.getBoundingClientRect().left >= g.right ? p.textContent : null; })()",
            "document.querySelector('#graph-label').textContent",
        )
        .await;
    assert!(peak.as_str().unwrap().starts_with("peak "), "{peak}");

    // Patterns typed (their × shows) and one the hub refuses: the header stays.
    s.page.type_into("#highlight", "wide").await;
    s.page.type_into("#exclude", "a(").await;
    s.page
        .wait_for(
            "the hub's error",
            "document.querySelector('#exclude-error').textContent",
            "document.querySelector('#bar').innerText",
        )
        .await;
    assert_eq!(s.page.eval(one_row).await, true, "still one row");
    assert_eq!(s.page.eval(height).await, before, "the header's height");
    // The message is in sight, on top.
    let seen = s
        .page
        .eval("(() => { const e = document.querySelector('#exclude-error'); const r = e.getBoundingClientRect(); \
               return r.width > 0 && r.right <= innerWidth && e.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)); })()")
        .await;
    assert_eq!(seen, true);
    s.page.screenshot("header-1920-error").await;
    s.page.assert_no_problems();
}

/// 5,000 matching lines/s for 60 s into one tab. Run with
/// `cargo test --release --test web -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn benchmark_5000_lines_per_second() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rate: u64 = 5000;
    let query = std::env::var("BENCH_QUERY").unwrap_or_default();
    let mut s = Setup::with(&["load.log"], None, &query).await;
    s.page.type_into("#include", "match").await;
    s.page.type_into("#highlight", "user=\\w+").await;
    blur(&mut s.page).await;
    wait_ready(&mut s.page).await;
    s.page
        .call("Performance.enable", serde_json::json!({}))
        .await;
    // Long tasks and frame gaps, measured in the page.
    s.page
        .eval(
            r#"(() => {
        window.__bench = { longest: 0, longTasks: 0, frames: 0, missedFrames: 0, slowFrames: 0, worstFrame: 0 };
        new PerformanceObserver(list => {
            for (const e of list.getEntries()) {
                window.__bench.longTasks++;
                window.__bench.longest = Math.max(window.__bench.longest, e.duration);
            }
        }).observe({ type: 'longtask', buffered: true });
        let last = performance.now();
        const tick = now => {
            const gap = now - last;
            last = now;
            window.__bench.frames++;
            window.__bench.missedFrames += Math.max(0, Math.round(gap / (1000 / 60)) - 1);
            if (gap > 34) window.__bench.slowFrames++;
            window.__bench.worstFrame = Math.max(window.__bench.worstFrame, gap);
            requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
        return true;
    })()"#,
        )
        .await;

    // The writer: a thread appending `rate` lines a second in 100 batches a second.
    let path = s.path("load.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let due = start.elapsed().as_secs_f64() * rate as f64;
                let mut buf = String::new();
                while (n as f64) < due {
                    buf.push_str(&format!(
                        "2026-11-22T01:02:03.{:03}Z INFO request match id={n} user=u{} path=/api/v1/items/{} took={}ms https://example.com/trace/{n}\n",
                        n % 1000,
                        n % 97,
                        n % 1013,
                        n % 250
                    ));
                    n += 1;
                }
                if !buf.is_empty() {
                    std::io::Write::write_all(&mut f, buf.as_bytes()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };

    async fn metrics(page: &mut Page) -> std::collections::HashMap<String, f64> {
        let m = page
            .call("Performance.getMetrics", serde_json::json!({}))
            .await;
        m["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["name"].as_str().unwrap_or("").to_owned(),
                    x["value"].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    }
    async fn heap(page: &mut Page) -> f64 {
        page.call("HeapProfiler.collectGarbage", serde_json::json!({}))
            .await;
        metrics(page).await["JSHeapUsedSize"]
    }

    let begin = Instant::now();
    let warmup = Duration::from_secs(10.min(secs / 3));
    tokio::time::sleep(warmup).await;
    let heap_start = heap(&mut s.page).await;
    let m_start = metrics(&mut s.page).await;
    let t_start = Instant::now();
    let mut samples = vec![];
    while begin.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let h = heap(&mut s.page).await;
        let stats = s.page.eval("window.__supergrep.stats()").await;
        samples.push((begin.elapsed().as_secs(), h, stats));
    }
    let m_end = metrics(&mut s.page).await;
    let wall = t_start.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_PROFILE").is_some() {
        profile(&mut s.page).await;
    }
    let heap_end = heap(&mut s.page).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let bench = s.page.eval("window.__bench").await;
    let stats = s.page.eval("window.__supergrep.stats()").await;
    let nodes = s
        .page
        .eval("document.getElementsByTagName('*').length")
        .await;
    println!("benchmark: {written} lines written in {secs} s ({rate}/s), all matching");
    for (t, h, st) in &samples {
        println!("  t={t:>3}s heap={:.1} MB view={st}", h / 1e6);
    }
    println!(
        "  JS heap after {} s warm-up: {:.1} MB; at the end: {:.1} MB ({:+.1}%)",
        warmup.as_secs(),
        heap_start / 1e6,
        heap_end / 1e6,
        (heap_end / heap_start - 1.0) * 100.0
    );
    let busy = |k: &str| (m_end[k] - m_start[k]) / wall * 100.0;
    println!(
        "  main thread busy {:.0}% of the time (script {:.0}%, style {:.0}%, layout {:.0}%)",
        busy("TaskDuration"),
        busy("ScriptDuration"),
        busy("RecalcStyleDuration"),
        busy("LayoutDuration")
    );
    println!(
        "  long tasks (over 50 ms): {}, the longest {} ms; frames: {} ({} missed, {} gaps over 34 ms, worst gap {:.0} ms)",
        bench["longTasks"],
        bench["longest"],
        bench["frames"],
        bench["missedFrames"],
        bench["slowFrames"],
        bench["worstFrame"].as_f64().unwrap_or(0.0)
    );
    println!("  view: {stats}; DOM elements: {nodes}");
    s.page.screenshot("benchmark").await;
    assert!(
        heap_end < heap_start * 1.2 + 2e6,
        "heap grew from {heap_start} to {heap_end}"
    );
}

/// Where the page's main thread spends its time for 5 s (V8 sampling profiler; time
/// spent in layout and style forced by a script is counted in that script).
async fn profile(page: &mut Page) {
    page.call("Profiler.enable", serde_json::json!({})).await;
    page.call(
        "Profiler.setSamplingInterval",
        serde_json::json!({"interval": 200}),
    )
    .await;
    page.call("Profiler.start", serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let p = page.call("Profiler.stop", serde_json::json!({})).await;
    let nodes = p["profile"]["nodes"].as_array().unwrap();
    let mut by: std::collections::HashMap<String, u64> = Default::default();
    let mut total = 0;
    for n in nodes {
        let f = &n["callFrame"];
        let name = format!(
            "{} {}:{}",
            f["functionName"].as_str().unwrap_or(""),
            f["url"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or(""),
            f["lineNumber"]
        );
        let hits = n["hitCount"].as_u64().unwrap_or(0);
        total += hits;
        *by.entry(name).or_default() += hits;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!("  profile ({total} samples):");
    for (name, hits) in v.iter().take(25) {
        println!(
            "    {:5.1}% {name}",
            *hits as f64 * 100.0 / total.max(1) as f64
        );
    }

    // The renderer's main thread from a trace: script, style, layout, paint.
    page.call(
        "Tracing.start",
        serde_json::json!({
            "transferMode": "ReturnAsStream",
            "traceConfig": {"includedCategories": ["devtools.timeline", "blink", "v8"]}
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    page.call("Tracing.end", serde_json::json!({})).await;
    let done = page.wait_event("Tracing.tracingComplete").await;
    let handle = done["params"]["stream"].as_str().unwrap().to_owned();
    let mut raw = String::new();
    loop {
        let chunk = page
            .call(
                "IO.read",
                serde_json::json!({"handle": handle, "size": 1 << 20}),
            )
            .await;
        raw.push_str(chunk["data"].as_str().unwrap_or(""));
        if chunk["eof"] == true {
            break;
        }
    }
    let trace: Value = serde_json::from_str(&raw).unwrap_or_default();
    let events = trace["traceEvents"].as_array().cloned().unwrap_or_default();
    // The renderer main thread: the one that ran our script.
    let main = events
        .iter()
        .find(|e| e["name"] == "FunctionCall")
        .map(|e| (e["pid"].clone(), e["tid"].clone()));
    let mut by: std::collections::HashMap<String, (f64, u64)> = Default::default();
    for e in &events {
        if Some((e["pid"].clone(), e["tid"].clone())) != main || e["ph"] != "X" {
            continue;
        }
        let dur = e["dur"].as_f64().unwrap_or(0.0) / 1000.0;
        let entry = by
            .entry(e["name"].as_str().unwrap_or("").to_owned())
            .or_default();
        entry.0 += dur;
        entry.1 += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("  main thread over 5 s (ms, count; nested events overlap):");
    for (name, (ms, n)) in v.iter().take(60) {
        println!("    {ms:8.1} {n:6} {name}");
    }
}

#[tokio::test]
async fn a_slow_tab_is_told_what_the_hub_dropped() {
    let config = r#"
[[set]]
name = "default"
paths = ["{dir}/app.log"]

[limits]
client_queue = 50
"#;
    let mut s = Setup::with(&["app.log"], Some(config), "?q=flood").await;
    // The page stops reading (its main thread is busy) while lines pour in: the hub's
    // queue for it overflows.
    let path = s.path("app.log");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        for chunk in 0..40 {
            let text: String = (0..2000)
                .map(|i| format!("flood {chunk} {i} {}\n", "x".repeat(200)))
                .collect();
            append(&path, &text);
        }
    });
    s.page
        .eval("(() => { const end = Date.now() + 4000; while (Date.now() < end) {} })()")
        .await;
    writer.join().unwrap();
    let shown = s
        .page
        .wait_for(
            "the dropped count",
            "(() => { const d = document.querySelector('#dropped'); return !d.hidden && d.textContent; })()",
            "[document.querySelector('#dropped').textContent, window.__supergrep.stats()]",
        )
        .await;
    let n: u64 = shown
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "{shown}");
    eprintln!("dropped: {n}");
    // …and a note where they are missing (in what Download saves: the note may be
    // anywhere in the 5,000 lines kept).
    let (_, text) = download(&mut s.page).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("--- … ") && l.contains("dropped by the hub")),
        "no note in {} lines",
        text.lines().count()
    );
    s.page.assert_no_problems();
}
