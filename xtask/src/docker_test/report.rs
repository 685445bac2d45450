//! The scenario's results: one line per check as it finishes, and a closing `test result:` line
//! in cargo's format, which `cargo xtask test` adds to its `N passed, M failed` summary.

use anyhow::Result;

/// One finished check.
#[derive(Debug)]
struct Outcome {
    name: String,
    passed: bool,
}

/// The checks run so far.
#[derive(Debug, Default)]
pub struct Report {
    outcomes: Vec<Outcome>,
}

impl Report {
    /// Runs `check`, records and prints its outcome; returns whether it passed.
    pub fn check(&mut self, name: &str, check: impl FnOnce() -> Result<String>) -> bool {
        match check() {
            Ok(detail) if detail.is_empty() => self.pass(name, None),
            Ok(detail) => self.pass(name, Some(&detail)),
            Err(e) => {
                self.fail(name, &format!("{e:#}"));
                false
            }
        }
    }

    fn pass(&mut self, name: &str, detail: Option<&str>) -> bool {
        match detail {
            Some(d) => eprintln!("docker-test: ok: {name}: {d}"),
            None => eprintln!("docker-test: ok: {name}"),
        }
        self.outcomes.push(Outcome {
            name: name.to_owned(),
            passed: true,
        });
        true
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &str, why: &str) {
        eprintln!("docker-test: FAILED: {name}: {why}");
        self.outcomes.push(Outcome {
            name: name.to_owned(),
            passed: false,
        });
    }

    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// Names of the failed checks.
    pub fn failed_names(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.name.as_str())
            .collect()
    }

    /// The closing line, in the format of cargo's test harness.
    pub fn result_line(&self) -> String {
        format!(
            "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
            if self.failed() == 0 { "ok" } else { "FAILED" },
            self.passed(),
            self.failed()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_counted_and_the_result_line_reads_like_cargos() {
        let mut r = Report::default();
        assert!(r.check("one", || Ok("fine".to_owned())));
        assert!(!r.check("two", || anyhow::bail!("broken")));
        r.fail("three", "skipped");
        assert_eq!((r.passed(), r.failed()), (1, 2));
        assert_eq!(r.failed_names(), ["two", "three"]);
        assert_eq!(
            r.result_line(),
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
        );
    }

    #[test]
    fn all_passed_reads_ok() {
        let mut r = Report::default();
        r.check("one", || Ok(String::new()));
        assert!(
            r.result_line()
                .starts_with("test result: ok. 1 passed; 0 failed")
        );
    }
}
