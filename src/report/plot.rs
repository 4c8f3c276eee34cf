//! A timeline drawn as SVG with plotters: one chart of lanes (each fault,
//! each step, each pod or node the watches saw) and, for a test that sent
//! messages, acknowledgements per second and their latency, under the same
//! time axis. Every chart has the same width and the same label area, so
//! that one second sits at the same x in all of them.

use super::timeline::{MarkKind, Second, StepState, Timeline};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

const WIDTH: u32 = 1100;
/// Room for the lanes' names (and the traffic charts' y axes).
const LABELS: u32 = 320;
const MARGIN: u32 = 24;
const LANE: u32 = 22;
const AXIS: u32 = 34;
const TRAFFIC: u32 = 170;
const FONT: &str = "sans-serif";

pub const PASSED: RGBColor = RGBColor(70, 130, 180);
pub const FAILED: RGBColor = RGBColor(200, 30, 30);
const UNFINISHED: RGBColor = RGBColor(150, 150, 150);
pub const FAULT: RGBColor = RGBColor(230, 140, 20);
pub const DOWN: RGBColor = RGBColor(200, 30, 30);
pub const UP: RGBColor = RGBColor(40, 150, 60);
const OTHER: RGBColor = RGBColor(120, 120, 120);
const MAXIMUM: RGBColor = RGBColor(150, 80, 170);

type Drawn = Result<(), Box<dyn Error>>;

/// The lanes chart of a timeline, as an SVG document.
pub fn lanes(timeline: &Timeline) -> Result<String, String> {
    let height = lane_names(timeline).len() as u32 * LANE + AXIS + 10;
    svg((WIDTH, height), |root| draw_lanes(root, timeline))
}

/// Acknowledgements per second and latency, as an SVG document.
pub fn traffic(timeline: &Timeline, seconds: &[Second]) -> Result<String, String> {
    svg((WIDTH, 2 * TRAFFIC), |root| {
        let (acks, latency) = root.split_vertically(TRAFFIC);
        draw_acks(&acks, timeline, seconds)?;
        draw_latency(&latency, timeline, seconds)
    })
}

fn svg(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn) -> Result<String, String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        draw(&root).map_err(|error| error.to_string())?;
        root.present().map_err(|error| error.to_string())?;
    }
    Ok(text)
}

/// One lane per fault, per step and per watched subject, top to bottom.
fn lane_names(timeline: &Timeline) -> Vec<String> {
    let faults = timeline.faults.iter().map(|fault| format!("fault: {}", fault.fault));
    let steps = timeline.steps.iter().map(|step| format!("{}. {}", step.index, step.name));
    faults.chain(steps).chain(subjects(timeline)).map(|name| shortened(&name, 50)).collect()
}

/// The pods and nodes the watches saw, each named as what it is.
fn subjects(timeline: &Timeline) -> Vec<String> {
    let mut subjects: Vec<String> = timeline.marks.iter().map(subject_lane).collect();
    subjects.sort();
    subjects.dedup();
    subjects
}

fn subject_lane(mark: &super::timeline::Mark) -> String {
    let kind = if mark.what.starts_with("node ") { "node" } else { "pod" };
    format!("{kind} {}", mark.subject)
}

fn shortened(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let mut short: String = text.chars().take(most - 1).collect();
    short.push('…');
    short
}

fn end_of(timeline: &Timeline) -> f64 {
    timeline.end.max(1.0)
}

fn draw_lanes(root: &DrawingArea<SVGBackend, Shift>, timeline: &Timeline) -> Drawn {
    let names = lane_names(timeline);
    let lanes = names.len() as f64;
    let end = end_of(timeline);
    let mut chart = ChartBuilder::on(root)
        .margin_top(10)
        .margin_right(MARGIN)
        .x_label_area_size(AXIS)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0f64..end, 0f64..lanes)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("seconds since the test began")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    // Lane i from the top spans lanes-i-1 .. lanes-i.
    let lane = |index: usize| lanes - index as f64 - 1.0;
    let bar = |from: f64, to: f64, index: usize, color: RGBColor| {
        let to = to.max(from + end / 400.0);
        Rectangle::new([(from, lane(index) + 0.2), (to, lane(index) + 0.8)], color.filled())
    };
    let windows = timeline.faults.iter().map(|fault| {
        Rectangle::new([(fault.from, 0.0), (fault.to.max(fault.from + end / 400.0), lanes)], FAULT.mix(0.12).filled())
    });
    chart.draw_series(windows)?;
    chart.draw_series(
        timeline.faults.iter().enumerate().map(|(index, fault)| bar(fault.from, fault.to, index, FAULT)),
    )?;
    let first_step = timeline.faults.len();
    chart.draw_series(timeline.steps.iter().enumerate().map(|(index, step)| {
        let color = match step.state {
            StepState::Passed => PASSED,
            StepState::Failed => FAILED,
            StepState::Unfinished => UNFINISHED,
        };
        bar(step.from, step.to, first_step + index, color)
    }))?;
    draw_marks(&mut chart, timeline, first_step + timeline.steps.len(), lane)?;
    for (index, name) in names.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(0.0, lane(index) + 0.5));
        let failed = index >= first_step
            && timeline.steps.get(index - first_step).is_some_and(|step| step.state == StepState::Failed);
        let style = TextStyle::from((FONT, 12).into_font())
            .color(if failed { &FAILED } else { &BLACK })
            .pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.as_str(), (LABELS as i32 - 8, y), style))?;
    }
    Ok(())
}

type LaneChart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What the watches saw, as dots in their subject's lane, each labelled
/// unless the label would run into the one before it.
fn draw_marks(chart: &mut LaneChart, timeline: &Timeline, first: usize, lane: impl Fn(usize) -> f64) -> Drawn {
    let subjects = subjects(timeline);
    let end = end_of(timeline);
    let plot_width = (WIDTH - LABELS - MARGIN) as f64;
    // Seconds a label of n characters covers, at about 6 px a character.
    let covers = |label: &str| (label.chars().count() as f64 * 6.0 + 10.0) * end / plot_width;
    let mut labelled_to = vec![f64::MIN; subjects.len()];
    for mark in &timeline.marks {
        let Ok(row) = subjects.binary_search(&subject_lane(mark)) else { continue };
        let color = match mark.kind {
            MarkKind::Down => DOWN,
            MarkKind::Up => UP,
            MarkKind::Other => OTHER,
        };
        let dot = EmptyElement::at((mark.at, lane(first + row) + 0.5)) + Circle::new((0, 0), 4, color.filled());
        let label = mark.what.strip_prefix("node ").unwrap_or(&mark.what);
        if mark.at < labelled_to[row] {
            chart.draw_series(std::iter::once(dot))?;
            continue;
        }
        // A label that would run off the right edge goes left of its dot.
        let left = mark.at + covers(label) > end;
        let (anchor, offset) = if left { (HPos::Right, -7) } else { (HPos::Left, 7) };
        let style = TextStyle::from((FONT, 11).into_font()).color(&color).pos(Pos::new(anchor, VPos::Center));
        chart.draw_series(std::iter::once(dot + Text::new(label.to_string(), (offset, 0), style)))?;
        labelled_to[row] = if left { mark.at } else { mark.at + covers(label) };
    }
    Ok(())
}

fn draw_acks(area: &DrawingArea<SVGBackend, Shift>, timeline: &Timeline, seconds: &[Second]) -> Drawn {
    let end = end_of(timeline);
    let most = seconds.iter().map(|second| second.acked.max(second.unacked)).max().unwrap_or(0).max(1);
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_right(MARGIN)
        .x_label_area_size(AXIS)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0f64..end, 0f64..most as f64 * 1.15)?;
    chart
        .configure_mesh()
        .y_desc("sends per second")
        .y_label_formatter(&|y| if y.fract() == 0.0 { format!("{y:.0}") } else { String::new() })
        .x_desc("seconds since the test began")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    fault_windows(&mut chart, timeline, most as f64 * 1.15)?;
    // Dots too: a burst acknowledged within one second is one point, not a line.
    let acked = seconds.iter().map(|second| (second.at + 0.5, second.acked as f64));
    chart
        .draw_series(LineSeries::new(acked, PASSED.stroke_width(2)).point_size(2))?
        .label("acknowledged")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], PASSED.stroke_width(2)));
    let unacked = seconds.iter().filter(|second| second.unacked > 0);
    chart
        .draw_series(unacked.map(|second| Circle::new((second.at + 0.5, second.unacked as f64), 3, DOWN.filled())))?
        .label("failed or outcome unknown")
        .legend(|(x, y)| Circle::new((x + 8, y), 3, DOWN.filled()));
    legend(&mut chart)
}

fn draw_latency(area: &DrawingArea<SVGBackend, Shift>, timeline: &Timeline, seconds: &[Second]) -> Drawn {
    let end = end_of(timeline);
    let longest = seconds.iter().filter_map(|second| second.latency).map(|(_, max)| max).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_right(MARGIN)
        .x_label_area_size(AXIS)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0f64..end, (1f64..longest * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .y_desc("ms to the ack (by send time)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("seconds since the test began")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    fault_windows(&mut chart, timeline, longest * 2.0)?;
    for (name, color, pick) in
        [("median", PASSED, (|(median, _)| median) as fn((f64, f64)) -> f64), ("longest", MAXIMUM, |(_, max)| max)]
    {
        // A second without acknowledged sends breaks the line instead of bridging it.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for second in seconds {
            match second.latency {
                Some(latency) => {
                    runs.last_mut().expect("one run at least").push((second.at + 0.5, pick(latency).max(1.0)))
                }
                None if runs.last().is_some_and(|run| !run.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        for (number, run) in runs.into_iter().filter(|run| !run.is_empty()).enumerate() {
            let series = chart.draw_series(LineSeries::new(run, color.stroke_width(2)).point_size(2))?;
            if number == 0 {
                series.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
            }
        }
    }
    legend(&mut chart)
}

/// The faults' windows, shaded as in the lanes above.
fn fault_windows<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
    timeline: &Timeline,
    top: f64,
) -> Drawn {
    let end = end_of(timeline);
    let bottom = chart.y_range().start;
    chart.draw_series(timeline.faults.iter().map(|fault| {
        let to = fault.to.max(fault.from + end / 400.0);
        Rectangle::new([(fault.from, bottom), (to, top)], FAULT.mix(0.12).filled())
    }))?;
    Ok(())
}

fn legend<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}
