//! The HTML page of a demand sweep: throughput relative to the baseline against demand % and
//! against peak use %, each with the CUDA reference report's bands drawn as a step line, and
//! preemptions against demand %; the sweep's table and knee lines under them.

use std::fmt::Write as _;

use super::charts::{Line, line_chart};
use super::html::{escape, figure, page};
use super::sweep::{CurvePoint, ReportBand, baseline, relative_pct};
use super::sweep_run::SweepFile;
use super::sweep_table::notes;

/// The report's bands as two step lines from utilization 0 to `x_end`: the upper figure of
/// each band (100, 95, 85, then 60 from 80% on) and, from 80% on, the lower 50%.
pub fn band_lines(x_end: f64) -> [Line; 2] {
    let mut upper = Vec::new();
    for (i, band) in ReportBand::ALL.iter().enumerate() {
        let (_, high) = band.throughput_pct();
        let end = ReportBand::ALL
            .get(i + 1)
            .map_or(x_end, |next| next.from_pct().min(x_end));
        let start = band.from_pct();
        if start >= x_end {
            break;
        }
        upper.push((start, high));
        upper.push((end, high));
    }
    let steep = ReportBand::Steep.from_pct();
    let lower = if x_end > steep {
        vec![(steep, 50.0), (x_end, 50.0)]
    } else {
        Vec::new()
    };
    [
        Line {
            label: "report: 100 / 95 / 85 / 60%".into(),
            points: upper,
        },
        Line {
            label: "report: 50% (above 80%)".into(),
            points: lower,
        },
    ]
}

/// The page of one sweep file.
pub fn sweep_html(sweep: &SweepFile) -> String {
    let title = format!("pagekv sweep: scenario {:02}", sweep.scenario_id);
    let mut body = format!("<h1>{}</h1>", escape(&title));
    let a = &sweep.adapter;
    let _ = write!(
        body,
        "<p class=\"meta\">{}, preset <code>{}</code>, {}{}. Throughput is \
         completed requests per second, wall clock over fence-waited engine steps, each point \
         run once, as % of the lowest-demand point. The report's bands are its \"Throughput \
         vs. Cache Utilization\" table, drawn against demand % and against peak use %.</p>",
        escape(&a.identity()),
        escape(&sweep.preset),
        escape(&sweep.plan.describe()),
        if sweep.complete {
            ""
        } else {
            " (INCOMPLETE sweep)"
        }
    );
    let curve = sweep.curve();
    let base = baseline(&curve);
    // In x order: peak use saturates near 100% while demand keeps rising.
    let rel = |x: fn(&CurvePoint) -> Option<f64>| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = curve
            .iter()
            .filter_map(|p| Some((x(p)?, relative_pct(p, base)?)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let by_demand = rel(|p| Some(p.demand_pct));
    let by_peak = rel(|p| p.peak_use_pct);
    let x_end =
        |points: &[(f64, f64)], floor: f64| points.iter().map(|p| p.0).fold(floor, f64::max);
    let charts = [
        (
            "Throughput against demand %",
            "demand % (demand / budget)",
            by_demand,
        ),
        (
            "Throughput against peak use %",
            "peak use % (what the pool held)",
            by_peak,
        ),
    ];
    for (title, x_desc, points) in charts {
        let end = x_end(&points, 100.0);
        let mut lines = vec![Line {
            label: "measured".into(),
            points,
        }];
        // Head room above the data for the legend.
        let top = lines[0].points.iter().map(|p| p.1).fold(100.0, f64::max) * 1.35;
        lines.extend(band_lines(end));
        figure(
            &mut body,
            &line_chart(
                title,
                x_desc,
                "% of baseline req/s",
                &lines,
                &[],
                Some(top),
                (560, 320),
            ),
        );
    }
    let preemptions: Vec<(f64, f64)> = sweep
        .points
        .iter()
        .filter_map(|p| {
            let m = p.result.measured.as_ref()?;
            Some((p.demand_pct_planned, m.preemptions as f64))
        })
        .collect();
    let top_preemptions = preemptions.iter().map(|p| p.1).fold(1.0, f64::max) * 1.35;
    figure(
        &mut body,
        &line_chart(
            "Preemptions against demand %",
            "demand %",
            "preemptions",
            &[Line {
                label: "preemptions".into(),
                points: preemptions,
            }],
            &[],
            Some(top_preemptions),
            (560, 320),
        ),
    );
    points_table(&mut body, sweep, &curve, base);
    body.push_str("<ul>");
    for line in notes(sweep) {
        let _ = write!(body, "<li>{}</li>", escape(&line));
    }
    body.push_str("</ul>");
    page(&title, &body)
}

fn points_table(body: &mut String, sweep: &SweepFile, curve: &[CurvePoint], base: Option<f64>) {
    body.push_str(
        "<table><tr><th>demand %</th><th>peak use %</th><th>req/s</th><th>vs baseline %</th>\
         <th>preempt</th><th>report (by peak use)</th><th>report (by demand)</th></tr>",
    );
    let fmt = |x: Option<f64>, digits: usize| x.map_or("-".into(), |v| format!("{v:.digits$}"));
    for (p, c) in sweep.points.iter().zip(curve) {
        let m = p.result.measured.as_ref();
        let _ = write!(
            body,
            "<tr><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            p.demand_pct_planned,
            fmt(c.peak_use_pct, 1),
            fmt(c.requests_per_s, 2),
            fmt(relative_pct(c, base), 1),
            m.map_or("-".into(), |m| m.preemptions.to_string()),
            c.peak_use_pct
                .map_or("-".into(), |u| escape(&ReportBand::of(u).to_string())),
            escape(&ReportBand::of(p.demand_pct_planned).to_string()),
        );
    }
    body.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bands_step_down_at_the_report_thresholds() {
        let [upper, lower] = band_lines(400.0);
        assert_eq!(
            upper.points,
            vec![
                (0.0, 100.0),
                (60.0, 100.0),
                (60.0, 95.0),
                (70.0, 95.0),
                (70.0, 85.0),
                (80.0, 85.0),
                (80.0, 60.0),
                (90.0, 60.0),
                (90.0, 60.0),
                (400.0, 60.0)
            ]
        );
        assert_eq!(lower.points, vec![(80.0, 50.0), (400.0, 50.0)]);
        let [short, none] = band_lines(65.0);
        assert_eq!(short.points.last(), Some(&(65.0, 95.0)));
        assert!(none.points.is_empty());
    }
}
