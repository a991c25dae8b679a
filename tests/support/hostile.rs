//! The costly subscription of issue 25 §2, shared by `tests/isolation.rs` and
//! `benches/hostile.rs` (included there by path), so the bench measures what the
//! test asserts.

/// `n` literal-less patterns like `(?i)\w+=\w*a\w*\s+\S*17\S*\s\w{2,8}$`: the letter
/// and the number vary. 200 of them in the shared matcher took 100,000 lines from
/// 0.02 s to 8.4 s for every client.
pub fn hostile_patterns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let letter = (b'a' + (i % 26) as u8) as char;
            format!(r"(?i)\w+=\w*{letter}\w*\s+\S*{}\S*\s\w{{2,8}}$", 17 + i)
        })
        .collect()
}
