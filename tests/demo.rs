//! `supergrep serve --demo` as the README shows it to a newcomer: its files are named
//! for what they hold, and the README's examples find lines in it as written.

mod support;

use support::hub::Hub;
use support::proc::supergrep;

/// The demo's files, each named for the Loghub dataset it holds (src/demo/README.md).
const FILES: [&str; 8] = [
    "android.log",
    "apache-error.log",
    "auth.log",
    "hdfs.log",
    "messages.log",
    "openstack.log",
    "spark.log",
    "zookeeper.log",
];

#[test]
fn the_readme_examples_find_lines_in_the_demo() {
    let hub = Hub::start(&["--demo"]);
    // Every file has been written to once the hub lists eight streams.
    support::wait::wait_until("the demo's eight files are streams", || {
        hub.streams().len() == FILES.len()
    });
    let mut names: Vec<String> = hub
        .streams()
        .into_iter()
        .map(|(_, _, path, _)| path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, FILES);

    // (pattern as the README types it, the files whose lines have it)
    for (pattern, files) in [
        ("ERROR", &["zookeeper.log"][..]),
        ("Failed password", &["auth.log"]),
        ("Exception", &["android.log", "auth.log", "zookeeper.log"]),
        ("\\[error\\]", &["apache-error.log"]),
    ] {
        let mut client = supergrep(&["--connect", &hub.ws_url(), "-e", pattern]);
        let line = client.lines(1).remove(0);
        let re = regex::Regex::new(pattern).unwrap();
        assert!(re.is_match(&line), "{pattern}: {line}");
        assert!(
            files.iter().any(|f| line.contains(&format!("/{f}:"))),
            "{pattern}: {line}"
        );
    }
}
