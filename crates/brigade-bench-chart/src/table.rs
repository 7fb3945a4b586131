//! The table a chart is drawn from: the JSON contract between bench scripts and this binary.

use serde::Deserialize;

/// A table of measurements: each row is a group of bars, one per series.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The chart's caption.
    pub title: String,
    /// Unit of every value (`req/s`, `MiB`, `ms`), written on the value axis.
    pub unit: String,
    /// One group of bars per row, drawn top to bottom in this order.
    pub rows: Vec<Row>,
}

/// One measurement, e.g. "menu read, SQLite, log warn".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Written beside the row's bars.
    pub label: String,
    /// The row's bars; a series a row lacks leaves a gap in its group.
    pub series: Vec<Point>,
}

/// One bar: the value of one series (e.g. "this build", "baseline") in one row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The series, named in the legend.
    pub name: String,
    /// The bar's length, in the table's unit.
    pub value: f64,
}

/// Why a table cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Not JSON, or JSON not in the contract; the message names the offending field.
    #[error("invalid table: {0}")]
    Json(#[from] serde_path_to_error::Error<serde_json::Error>),
    /// Something after the table's closing brace.
    #[error("invalid table: {0}")]
    Trailing(serde_json::Error),
    /// Nothing to draw.
    #[error("invalid table: rows is empty, nothing to draw")]
    NoRows,
    /// A row without bars.
    #[error("invalid table: rows[{0}].series is empty")]
    NoSeries(usize),
    /// Bars start at zero, so a value must be a finite number of at least zero.
    #[error("invalid table: rows[{row}].series[{point}].value is {value}, not a finite value >= 0")]
    BadValue {
        /// Index of the row.
        row: usize,
        /// Index of the bar in the row.
        point: usize,
        /// The value found.
        value: f64,
    },
}

impl Table {
    /// Parses and checks a table.
    pub fn from_json(text: &str) -> Result<Self, TableError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let table: Table = serde_path_to_error::deserialize(&mut deserializer)?;
        deserializer.end().map_err(TableError::Trailing)?;
        table.validate()?;
        Ok(table)
    }

    fn validate(&self) -> Result<(), TableError> {
        if self.rows.is_empty() {
            return Err(TableError::NoRows);
        }
        for (row, r) in self.rows.iter().enumerate() {
            if r.series.is_empty() {
                return Err(TableError::NoSeries(row));
            }
            for (point, p) in r.series.iter().enumerate() {
                if !p.value.is_finite() || p.value < 0.0 {
                    let value = p.value;
                    return Err(TableError::BadValue { row, point, value });
                }
            }
        }
        Ok(())
    }

    /// Series names in order of first appearance: the legend, and each bar's slot in a group.
    pub fn series_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for point in self.rows.iter().flat_map(|r| &r.series) {
            if !names.contains(&point.name.as_str()) {
                names.push(&point.name);
            }
        }
        names
    }

    /// The largest value, the end of the value axis.
    pub fn max_value(&self) -> f64 {
        self.rows
            .iter()
            .flat_map(|r| &r.series)
            .map(|p| p.value)
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_the_field() {
        let text = r#"{"title":"t","unit":"u","rows":[{"label":"a","series":[{"name":"x","value":"fast"}]}]}"#;
        let error = Table::from_json(text).unwrap_err().to_string();
        assert!(error.contains("rows[0].series[0].value"), "{error}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let text = r#"{"title":"t","rows":[]}"#;
        let error = Table::from_json(text).unwrap_err().to_string();
        assert!(error.contains("unit"), "{error}");
    }

    #[test]
    fn trailing_text_is_refused() {
        let text = r#"{"title":"t","unit":"u","rows":[]} {"#;
        assert!(matches!(
            Table::from_json(text),
            Err(TableError::Trailing(_))
        ));
    }

    #[test]
    fn empty_rows_are_a_clear_error() {
        let error = Table::from_json(r#"{"title":"t","unit":"u","rows":[]}"#).unwrap_err();
        assert!(matches!(error, TableError::NoRows));
        assert_eq!(
            error.to_string(),
            "invalid table: rows is empty, nothing to draw"
        );
    }

    #[test]
    fn a_row_without_bars_is_named() {
        let text = r#"{"title":"t","unit":"u","rows":[{"label":"a","series":[{"name":"x","value":1}]},{"label":"b","series":[]}]}"#;
        let error = Table::from_json(text).unwrap_err().to_string();
        assert!(error.contains("rows[1].series is empty"), "{error}");
    }

    #[test]
    fn negative_values_are_named() {
        let text =
            r#"{"title":"t","unit":"u","rows":[{"label":"a","series":[{"name":"x","value":-1}]}]}"#;
        let error = Table::from_json(text).unwrap_err().to_string();
        assert!(error.contains("rows[0].series[0].value is -1"), "{error}");
    }

    #[test]
    fn series_keep_their_first_order() {
        let text = r#"{"title":"t","unit":"u","rows":[
            {"label":"a","series":[{"name":"now","value":1}]},
            {"label":"b","series":[{"name":"before","value":3},{"name":"now","value":2}]}]}"#;
        let table = Table::from_json(text).unwrap();
        assert_eq!(table.series_names(), ["now", "before"]);
        assert_eq!(table.max_value(), 3.0);
    }
}
