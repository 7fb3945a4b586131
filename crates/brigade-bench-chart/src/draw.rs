//! Renders a [`Table`] as a grouped horizontal bar chart in SVG.
//!
//! Horizontal bars because the row labels are long ("menu read, SQLite, log info to /dev/null,
//! 64 conns") and read naturally beside their bars. Each row is a group with one bar per
//! series, in the order the series first appear, so "this build" and "baseline" keep their
//! colours and positions from row to row. Every bar carries its value, so the chart can be read
//! without the table.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::table::Table;

/// Why drawing failed (the SVG backend writes into memory, so in practice only on bad input
/// that validation let through).
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart failed: {0}")]
pub struct DrawError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        Self(error.to_string())
    }
}

/// Series colours (Tableau 10), cycled when a table has more series.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xb0, 0x7a, 0xa1),
];

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";
const LEGEND_HEIGHT: u32 = 30;
const BAR_HEIGHT: u32 = 18;
/// Approximate width of one character at the label size, for the label column's width.
const CHAR_WIDTH: u32 = 7;

/// The SVG document of `table`'s chart.
pub fn svg(table: &Table) -> Result<String, DrawError> {
    let series = table.series_names();
    let group_height = BAR_HEIGHT * series.len() as u32 + 14;
    let height = 50 + LEGEND_HEIGHT + group_height * table.rows.len() as u32 + 50;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&table.title, (FONT, 20))?;
        let (legend, plot) = root.split_vertically(LEGEND_HEIGHT);
        draw_legend(&legend, &series)?;
        draw_bars(&plot, table, &series)?;
        root.present()?;
    }
    Ok(out)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[&str],
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let mut x = 20;
    for (index, name) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        area.draw(&Rectangle::new([(x, 8), (x + 14, 22)], colour.filled()))?;
        area.draw(&Text::new(name.to_string(), (x + 20, 8), (FONT, 14)))?;
        x += 40 + CHAR_WIDTH as i32 * name.chars().count() as i32;
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    table: &Table,
    series: &[&str],
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let rows = table.rows.len();
    let longest = table.rows.iter().map(|r| r.label.chars().count());
    let label_width = (longest.max().unwrap_or(0) as u32 * CHAR_WIDTH + 16).clamp(60, 520);
    // Room right of the longest bar for its value.
    let x_end = (table.max_value() * 1.18).max(f64::MIN_POSITIVE);
    let labels: Vec<&str> = table.rows.iter().map(|r| r.label.as_str()).collect();
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0.0..x_end, RowAxis::new(rows))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc(table.unit.as_str())
        .x_label_formatter(&|v| format_value(*v))
        .y_label_formatter(&|y| row_at(&labels, *y).to_owned())
        .label_style((FONT, 13))
        .draw()?;
    let slot = 0.8 / series.len() as f64;
    let value_style = TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Left, VPos::Center));
    for (index, row) in table.rows.iter().enumerate() {
        // The first row at the top.
        let top = (rows - index) as f64 - 0.1;
        for point in &row.series {
            let position = series.iter().position(|s| *s == point.name).unwrap_or(0);
            let colour = COLOURS[position % COLOURS.len()];
            let y0 = top - slot * (position + 1) as f64;
            let y1 = y0 + slot;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (point.value, y1)],
                colour.filled(),
            )))?;
            let label = Text::new(
                format!(" {}", format_value(point.value)),
                (point.value, y0 + slot / 2.0),
                value_style.clone(),
            );
            chart.draw_series(std::iter::once(label))?;
        }
    }
    Ok(())
}

/// The row axis: one band of height 1 per row, with its tick (and label) at the band's centre
/// rather than at the round numbers a numeric axis would pick.
struct RowAxis {
    rows: usize,
    linear: RangedCoordf64,
}

impl RowAxis {
    fn new(rows: usize) -> Self {
        let linear = (0.0..rows as f64).into();
        Self { rows, linear }
    }
}

impl Ranged for RowAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.rows).map(|row| row as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// The label of the row whose band holds `y` (the first row is the top band).
fn row_at<'a>(labels: &[&'a str], y: f64) -> &'a str {
    let band = y.floor().max(0.0) as usize;
    labels
        .len()
        .checked_sub(band + 1)
        .and_then(|index| labels.get(index))
        .copied()
        .unwrap_or("")
}

/// 12,345 for large values, 12.3 for small ones (MiB, ms).
pub fn format_value(value: f64) -> String {
    if value.abs() < 100.0 {
        let text = format!("{value:.1}");
        return text.strip_suffix(".0").map_or(text.clone(), str::to_owned);
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0.0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::from_json(
            r#"{"title":"Menu reads","unit":"req/s","rows":[
                {"label":"hello-world GET /","series":[{"name":"this build","value":101234.6}]},
                {"label":"menu read, SQLite, log info","series":[
                    {"name":"this build","value":40321},{"name":"baseline","value":30111}]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_svg_holds_every_label_and_series_name() {
        let svg = svg(&table()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in [
            "Menu reads",
            "req/s",
            "hello-world GET /",
            "menu read, SQLite, log info",
            "this build",
            "baseline",
            "101,235",
            "30,111",
        ] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
        assert!(svg.contains("<text"), "text is written as <text> elements");
    }

    #[test]
    fn rows_read_top_down() {
        let labels = ["first", "second", "third"];
        assert_eq!(row_at(&labels, 2.5), "first");
        assert_eq!(row_at(&labels, 0.5), "third");
        assert_eq!(row_at(&labels, 7.0), "");
    }

    #[test]
    fn values_are_readable() {
        assert_eq!(format_value(1234567.4), "1,234,567");
        assert_eq!(format_value(123.0), "123");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(7.0), "7");
        assert_eq!(format_value(0.0), "0");
    }
}
