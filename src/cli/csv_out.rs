//! Every CSV the CLI writes goes through here, so that no cell can run as a formula when the file is
//! opened in a spreadsheet: audit cells carry text a secret's writer chooses (a ClientRequestToken, an
//! error message), and a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula
//! to Excel, Sheets and LibreOffice. Such a cell gets a leading `'`, the spreadsheets' own "this is
//! text" mark; plain numbers and a lone `-` (no value) are left as they are.

use std::io::Write;

/// A CSV writer whose cells are neutralised.
pub struct CsvOut<W: Write>(csv::Writer<W>);

impl<W: Write> CsvOut<W> {
    pub fn new(out: W) -> Self {
        CsvOut(csv::Writer::from_writer(out))
    }

    pub fn row<I, S>(&mut self, cells: I) -> std::io::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<String> = cells.into_iter().map(|c| neutralised(c.as_ref())).collect();
        self.0.write_record(&cells).map_err(std::io::Error::other)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The cell as a spreadsheet shows it without evaluating it.
pub fn neutralised(cell: &str) -> String {
    let starts_formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if starts_formula && cell != "-" && cell.parse::<f64>().is_err() {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_marked_as_text() {
        for (cell, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("setSecret", "setSecret"),
            ("-", "-"),
            ("-1.5", "-1.5"),
            ("42", "42"),
            ("", ""),
        ] {
            assert_eq!(neutralised(cell), shown, "{cell:?}");
        }
    }

    #[test]
    fn a_written_row_reads_back_neutralised() {
        let mut out = Vec::new();
        let mut csv = CsvOut::new(&mut out);
        csv.row(["=1+1", "ok, \"quoted\""]).expect("row");
        csv.flush().expect("flush");
        drop(csv);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        let record = reader.records().next().expect("a row").expect("parses");
        assert_eq!(&record[0], "'=1+1");
        assert_eq!(&record[1], "ok, \"quoted\"");
    }
}
