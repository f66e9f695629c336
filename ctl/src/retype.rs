//! `tascomi retype`: after a correction of the column-type dictionary (a column that was text
//! becomes `integer`, one typed by mistake goes back to text), the catalog refuses to publish an
//! increment or snapshot whose column types differ from its table's, and the snapshot merge
//! refuses to mix the two types. A retype compares T's increment and snapshot tables in the
//! catalog with what the dictionary now makes of each column and, when they differ, rebuilds
//! T with the new types: it is a reset from the recast stage at T's earliest parsed partition
//! ([`ops::plan_reset`]: every increment recast again, the snapshot chain rebuilt from the first
//! full load), with the catalog's column types set between the removal and the replay
//! ([`ops::Plan::execute`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use common::bookkeeping::is_bookkeeping;
use common::catalog::{Column, hive_type};
use common::dictionary::ColumnTypes;
use common::layout::{IMPORT_PARTITION_KEYS, Layer, TableName, date_value};

use crate::ops::{self, Plan, Published};
use crate::stage::Stage;
use crate::target::Target;

/// One column whose catalog type is not what the dictionary now makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChange {
    pub column: String,
    /// The type in the catalog now.
    pub from: String,
    /// The type recast writes with the dictionary as it is.
    pub to: String,
}

/// A catalog table of the table being retyped (its increment or its snapshot table) and the
/// column types to set in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRetype {
    pub layer: Layer,
    pub database: String,
    pub table: String,
    pub changes: Vec<ColumnChange>,
}

impl CatalogRetype {
    /// `retype increment_appeals (increment) in council-tascomi-refined-zone: ...`, one line per
    /// column.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "set the column types of {} ({}) in {} once its partitions are removed:\n",
            self.table, self.layer, self.database
        );
        for c in &self.changes {
            let _ = writeln!(text, "  {}: {} → {}", c.column, c.from, c.to);
        }
        text
    }
}

/// What a retype will do.
#[derive(Debug)]
pub enum Retype {
    /// Every column type of the table's increment and snapshot tables is what the dictionary
    /// says: nothing to do. The text says so (and names any hole the table has, with its
    /// repair: what an interrupted retype leaves).
    Agrees(String),
    /// The plan: the catalog's column types to set (`plan.retype`), the partitions to remove
    /// and the replay that rebuilds them (as `tascomi reset` prints and carries it out).
    Rebuild(Plan),
}

/// The type the increment of `table` has for `column` with the dictionary as it is (what
/// recast-svc writes), or `None` for a column whose type the dictionary never decides (the
/// bookkeeping columns, and the import partition values the snapshot carries).
pub fn dictionary_type(
    dictionary: &ColumnTypes,
    table: &str,
    column: &str,
    keep_as_text: bool,
) -> Option<&'static str> {
    if is_bookkeeping(column) || IMPORT_PARTITION_KEYS.contains(&column) {
        return None;
    }
    // The parsed layer is text; recast casts the columns the dictionary lists, and no others.
    Some(
        match dictionary
            .column_type(table, column)
            .filter(|_| !keep_as_text)
        {
            Some(t) => hive_type(&t.data_type()).unwrap_or("string"),
            None => "string",
        },
    )
}

/// The column types of the table's increment and snapshot tables that differ from the
/// dictionary's (tables not yet in the catalog have none).
pub async fn differences(
    target: &Target,
    table: &TableName,
    dictionary: &ColumnTypes,
) -> anyhow::Result<Vec<CatalogRetype>> {
    let platform = target.platform();
    let keep_as_text = target.pipeline().table_or_default(table).keep_as_text;
    let mut out = Vec::new();
    for layer in [Layer::Increment, Layer::Snapshot] {
        let any = platform.layout.partition(table, layer, NaiveDate::MIN);
        let Some(def) = platform
            .catalog
            .table(&any.database, &any.catalog_table)
            .await
            .with_context(|| format!("reading {}.{}", any.database, any.catalog_table))?
        else {
            continue;
        };
        let changes: Vec<ColumnChange> = def
            .columns
            .iter()
            .filter_map(|c| {
                let to = dictionary_type(dictionary, table.as_str(), &c.name, keep_as_text)?;
                (c.hive_type != to).then(|| ColumnChange {
                    column: c.name.clone(),
                    from: c.hive_type.clone(),
                    to: to.to_owned(),
                })
            })
            .collect();
        if !changes.is_empty() {
            out.push(CatalogRetype {
                layer,
                database: any.database.clone(),
                table: any.catalog_table.clone(),
                changes,
            });
        }
    }
    Ok(out)
}

/// Plans the retype of `table` against `dictionary` (the one the stages run with). `as_of` is
/// as for `reset`: without it each replayed partition rebuilds the snapshot of its own date.
///
/// Refused when the table has no parsed partition to recast from, or when an increment or
/// snapshot partition predates its earliest parsed partition: it could not be rebuilt with
/// the new types, and removing it would lose what it holds.
pub async fn plan(
    target: &Target,
    table: &TableName,
    dictionary: &ColumnTypes,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<Retype> {
    let retype = differences(target, table, dictionary).await?;
    if retype.is_empty() {
        return Ok(Retype::Agrees(agrees(target, table).await?));
    }
    let parsed = ops::partitions(target, table, Layer::Parsed).await?;
    let Some(from) = parsed.first().map(|p| p.date) else {
        bail!(
            "{table} has no parsed partition to recast from, so its increments and snapshots cannot be rebuilt with the new types (`tascomi status` shows its layers)"
        );
    };
    let mut orphans: Vec<Published> = Vec::new();
    for layer in [Layer::Increment, Layer::Snapshot] {
        orphans.extend(
            ops::partitions(target, table, layer)
                .await?
                .into_iter()
                .filter(|p| p.date < from),
        );
    }
    if let Some(first) = orphans.iter().map(|p| p.date).min() {
        let names: Vec<String> = orphans
            .iter()
            .map(|p| format!("{} {}", p.layer, date_value(p.date)))
            .collect();
        bail!(
            "{table}: {} predate its earliest parsed partition ({}), so they cannot be recast with the new types, and a retype would lose them; publish their parsed partitions again first (`tascomi replay --stage parse --table {table} --from {first} --to {}`, from the raw imports), then retype",
            names.join(", "),
            date_value(from),
            from.pred_opt().unwrap_or(from)
        );
    }
    let mut plan = ops::plan_reset(target, table, Stage::Recast, from, as_of).await?;
    plan.retype = retype;
    Ok(Retype::Rebuild(plan))
}

/// The most holes named after "nothing to retype".
const NOTES: usize = 3;

/// The "nothing to retype" text, with the table's holes (what an interrupted retype leaves)
/// and their repair.
async fn agrees(target: &Target, table: &TableName) -> anyhow::Result<String> {
    let mut text = format!(
        "{table}: the column types of its increment and snapshot tables in the catalog are what the column-type dictionary says: nothing to retype"
    );
    let mut dates: Vec<BTreeSet<NaiveDate>> = Vec::new();
    for layer in Layer::ALL {
        let published = ops::partitions(target, table, layer).await?;
        dates.push(published.iter().map(|p| p.date).collect());
    }
    let gaps = ops::table_gaps(table, &dates[0], &dates[1], &dates[2], &dates[3]);
    // The earliest holes say it all: a reset from the first rebuilds the later ones too.
    for gap in gaps.iter().take(NOTES) {
        let _ = write!(text, "\nnote: {}", gap.describe());
    }
    if gaps.len() > NOTES {
        let _ = write!(
            text,
            "\nnote: and {} more (`tascomi status` lists them)",
            gaps.len() - NOTES
        );
    }
    Ok(text)
}

/// Sets the column types of a retype in the catalog (see [`ops::Plan::execute`]).
pub(crate) async fn apply(target: &Target, retype: &[CatalogRetype]) -> anyhow::Result<()> {
    let catalog = &target.platform().catalog;
    for r in retype {
        let columns: Vec<Column> = r
            .changes
            .iter()
            .map(|c| Column {
                name: c.column.clone(),
                hive_type: c.to.clone(),
            })
            .collect();
        catalog
            .set_column_types(&r.database, &r.table, &columns)
            .await
            .with_context(|| format!("setting the column types of {}.{}", r.database, r.table))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_decides_every_column_but_bookkeeping_and_import_values() {
        let dictionary = ColumnTypes::parse(
            r#"[{"integer": {"appeals": ["id", "count"]}, "double": {"appeals": ["area"]},
                 "long": {"appeals": ["page_number"]}}]"#,
            "test",
        )
        .unwrap();
        let t = |column: &str, keep: bool| dictionary_type(&dictionary, "appeals", column, keep);
        assert_eq!(t("count", false), Some("int"));
        assert_eq!(t("area", false), Some("double"));
        assert_eq!(t("name", false), Some("string"));
        assert_eq!(t("count", true), Some("string"));
        assert_eq!(t("page_number", false), None);
        assert_eq!(t("import_date", false), None);
        assert_eq!(
            dictionary_type(&dictionary, "wards", "count", false),
            Some("string")
        );
    }
}
