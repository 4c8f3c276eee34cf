//! The run as one self-contained page, `report.html`: a table of every
//! test's outcome and times, then per test its message, links to its
//! diagnostics, and its timeline drawn from its history. Nothing in it is
//! fetched: the style is inline, the timelines are inline SVG, and links
//! are relative paths to the files beside it, so it opens from disk and
//! from a downloaded CI artifact alike.

use super::timeline::{StepState, Timeline};
use super::{Outcome, TestResult, plot, summary, write_atomically};
use crate::history::History;
use std::path::{Component, Path, PathBuf};

/// Files of a diagnostics folder linked one by one; more are reached
/// through the folder's own link.
const LISTED_FILES: usize = 60;

pub fn write(path: &Path, run: &str, results: &[TestResult]) -> std::io::Result<()> {
    let base = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    write_atomically(path, &render(run, results, base))
}

/// The page; its links are relative to `base`, the folder it is written to.
pub fn render(run: &str, results: &[TestResult], base: &Path) -> String {
    // One suite's tests together, in the order they finished.
    let mut ordered: Vec<&TestResult> = results.iter().collect();
    ordered.sort_by(|a, b| a.suite.cmp(&b.suite));
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>stateproof run {run}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>stateproof run {run}</h1>\n<p class=\"counts\">{counts}</p>\n",
        run = escape(run),
        counts = escape(&summary::counts(results)),
    );
    page.push_str(&summary_table(&ordered));
    for (index, result) in ordered.iter().enumerate() {
        page.push_str(&section(index, result, base));
    }
    page.push_str("</body>\n</html>\n");
    page
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1160px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 6px; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary td:nth-child(-n+2) { white-space: nowrap; }
section.test { border: 1px solid #ddd; border-left: 6px solid #2e8540; border-radius: 4px; padding: 12px 16px; margin: 22px 0; }
section.failed { border-left-color: #c81e1e; }
section.finding { border-left-color: #e08c14; }
section.skipped { border-left-color: #999; }
.badge { display: inline-block; min-width: 64px; text-align: center; border-radius: 3px; padding: 0 6px; color: #fff; font-size: 12px; font-weight: 600; background: #2e8540; }
.badge.failed { background: #c81e1e; }
.badge.finding { background: #e08c14; }
.badge.skipped { background: #888; }
.facts { color: #555; margin: 0 0 8px; }
pre.message { white-space: pre-wrap; background: #f6f6f6; border-left: 3px solid #bbb; padding: 8px 10px; margin: 8px 0; max-height: 320px; overflow: auto; }
section.failed pre.message { border-left-color: #c81e1e; background: #fdf2f2; }
section.finding pre.message { border-left-color: #e08c14; background: #fdf7ee; }
tr.failed td { background: #fdf2f2; color: #a11; font-weight: 600; }
tr.unfinished td { color: #777; font-style: italic; }
tr.failed td.error { font-weight: normal; white-space: pre-wrap; }
figure { margin: 10px 0; }
figure svg { max-width: 100%; height: auto; display: block; }
.legend span { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border-radius: 2px; }
.legend i.mark { border-radius: 50%; }
ul.files { columns: 3; margin: 4px 0; }
.note { color: #777; font-style: italic; }
";

fn outcome_label(outcome: &Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Passed => ("passed", "passed"),
        Outcome::PassedWithFindings(_) => ("finding", "FINDING"),
        Outcome::Failed(_) => ("failed", "FAILED"),
        Outcome::Skipped(_) => ("skipped", "skipped"),
    }
}

fn summary_table(results: &[&TestResult]) -> String {
    let mut table = String::from(
        "<table class=\"summary\">\n<tr><th>suite</th><th>test</th><th>outcome</th>\
         <th class=\"number\">duration</th><th class=\"number\">waiting on the cluster</th></tr>\n",
    );
    for (index, result) in results.iter().enumerate() {
        let (class, label) = outcome_label(&result.outcome);
        let why = match &result.outcome {
            Outcome::Skipped(reason) => format!(": {}", escape(&super::first_line(reason))),
            _ => String::new(),
        };
        table.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"#t{index}\">{}</a></td><td><span class=\"badge {class}\">{label}</span>{why}</td>\
             <td class=\"number\">{:.1} s</td><td class=\"number\">{:.1} s</td></tr>\n",
            escape(&result.suite),
            escape(&result.test),
            result.duration.as_secs_f64(),
            result.waited.as_secs_f64(),
        ));
    }
    table.push_str("</table>\n");
    table
}

fn section(index: usize, result: &TestResult, base: &Path) -> String {
    let (class, label) = outcome_label(&result.outcome);
    let mut html = format!(
        "<section id=\"t{index}\" class=\"test {class}\">\n<h2><span class=\"badge {class}\">{label}</span> {} › {}</h2>\n",
        escape(&result.suite),
        escape(&result.test)
    );
    html.push_str(&format!("<p class=\"facts\">{}</p>\n", facts(result)));
    match &result.outcome {
        Outcome::Failed(message) | Outcome::PassedWithFindings(message) | Outcome::Skipped(message) => {
            html.push_str(&format!("<pre class=\"message\">{}</pre>\n", escape(message)));
        }
        Outcome::Passed => {}
    }
    if let Some(dir) = &result.diagnostics {
        html.push_str(&diagnostics(dir, base));
    }
    html.push_str(&timeline(result, base));
    html.push_str("</section>\n");
    html
}

/// Where the test is written, how long it took and what it measured.
fn facts(result: &TestResult) -> String {
    let mut facts = Vec::new();
    if let Some(location) = result.location() {
        let line = location.line.map(|line| format!(":{line}")).unwrap_or_default();
        facts.push(format!("{}{line}", location.file.display()));
    }
    facts.push(format!("{:.1} s", result.duration.as_secs_f64()));
    facts.push(format!("{:.1} s waiting on the cluster", result.waited.as_secs_f64()));
    for (name, value) in &result.properties {
        if let Some(figure) = name.strip_suffix("-seconds") {
            facts.push(format!("{}: {value} s", figure.replace('-', " ")));
        }
    }
    escape(&facts.join(" · "))
}

fn diagnostics(dir: &Path, base: &Path) -> String {
    let mut files = Vec::new();
    list_files(dir, &mut files);
    files.sort();
    let mut html =
        format!("<p>Diagnostics: <a href=\"{}\">{}</a></p>\n", href(base, dir), escape(&dir.display().to_string()));
    if !files.is_empty() {
        html.push_str("<ul class=\"files\">\n");
        for file in files.iter().take(LISTED_FILES) {
            let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
            html.push_str(&format!("<li><a href=\"{}\">{}</a></li>\n", href(base, file), escape(&name)));
        }
        if files.len() > LISTED_FILES {
            html.push_str(&format!("<li class=\"note\">and {} more</li>\n", files.len() - LISTED_FILES));
        }
        html.push_str("</ul>\n");
    }
    html
}

fn list_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn timeline(result: &TestResult, base: &Path) -> String {
    let Some(path) = result.property("history") else {
        return "<p class=\"note\">No history was recorded for this test.</p>\n".into();
    };
    let path = Path::new(path);
    let history = match History::read_jsonl(path) {
        Ok(history) => history,
        Err(error) => return format!("<p class=\"note\">No timeline: {}</p>\n", escape(&format!("{error:#}"))),
    };
    let timeline = Timeline::of(&history);
    let link = format!("<a href=\"{}\">{}</a>", href(base, path), escape(&path.display().to_string()));
    if timeline.steps.is_empty() {
        return format!("<p class=\"note\">The history {link} holds no steps.</p>\n");
    }
    let mut html = format!("<figure class=\"timeline\">\n{}", svg(plot::lanes(&timeline)));
    html.push_str(&legend());
    if let Some(seconds) = &timeline.traffic {
        html.push_str(&svg(plot::traffic(&timeline, seconds)));
    }
    html.push_str(&format!("<figcaption>From the history {link}.</figcaption>\n</figure>\n"));
    html.push_str(&steps_table(&timeline));
    let checks: Vec<&String> = timeline.checks.iter().chain(&timeline.measured).collect();
    if !checks.is_empty() {
        html.push_str("<ul class=\"checks\">\n");
        for check in checks {
            html.push_str(&format!("<li>{}</li>\n", escape(check)));
        }
        html.push_str("</ul>\n");
    }
    html
}

fn svg(drawn: Result<String, String>) -> String {
    drawn.unwrap_or_else(|error| format!("<p class=\"note\">Cannot draw: {}</p>\n", escape(&error)))
}

fn legend() -> String {
    let entry = |color: plotters::style::RGBColor, class: &str, what: &str| {
        let plotters::style::RGBColor(r, g, b) = color;
        format!("<span><i class=\"{class}\" style=\"background: rgb({r},{g},{b})\"></i>{what}</span>")
    };
    format!(
        "<p class=\"legend\">{}{}{}{}{}</p>\n",
        entry(plot::PASSED, "bar", "step"),
        entry(plot::FAILED, "bar", "failed step"),
        entry(plot::FAULT, "bar", "fault, and its window"),
        entry(plot::DOWN, "mark", "not ready, NotReady, restarted, deleted"),
        entry(plot::UP, "mark", "ready, Ready"),
    )
}

fn steps_table(timeline: &Timeline) -> String {
    let mut table = String::from(
        "<table class=\"steps\">\n<tr><th class=\"number\">#</th><th>step</th>\
         <th class=\"number\">began</th><th class=\"number\">took</th></tr>\n",
    );
    for step in &timeline.steps {
        let class = match step.state {
            StepState::Passed => "passed",
            StepState::Failed => "failed",
            StepState::Unfinished => "unfinished",
        };
        table.push_str(&format!(
            "<tr class=\"{class}\"><td class=\"number\">{}</td><td>{}</td>\
             <td class=\"number\">{:.1} s</td><td class=\"number\">{:.1} s</td></tr>\n",
            step.index,
            escape(&step.name),
            step.from,
            step.to - step.from,
        ));
        if let Some(error) = &step.error {
            table.push_str(&format!(
                "<tr class=\"{class}\"><td></td><td class=\"error\" colspan=\"3\">{}</td></tr>\n",
                escape(error)
            ));
        }
        if step.state == StepState::Unfinished {
            table.push_str("<tr class=\"unfinished\"><td></td><td colspan=\"3\">never ended</td></tr>\n");
        }
    }
    table.push_str("</table>\n");
    table
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `target` as a link from a page in `base`: a relative path, each part
/// percent-encoded (`kafka[kafka@emptydir]` is a folder name).
fn href(base: &Path, target: &Path) -> String {
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (base, target) = (absolute(base), absolute(target));
    let parts = |path: &Path| {
        path.components()
            .filter(|component| !matches!(component, Component::CurDir))
            .map(|component| component.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let (base, target) = (parts(&base), parts(&target));
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let up = std::iter::repeat_n("..".to_string(), base.len() - common);
    let down = target[common..].iter().map(|part| encode(part));
    up.chain(down).collect::<Vec<_>>().join("/")
}

fn encode(part: &str) -> String {
    part.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests;
