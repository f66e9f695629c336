//! The catalog contract, run against every implementation of `common::catalog::Catalog` (the
//! local one in common/tests/local_contract.rs, Glue on moto in common/tests/moto_glue.rs).

use std::collections::BTreeMap;

use common::catalog::{Catalog, CatalogError, Column, PartitionInfo, TableDef};

fn col(name: &str, t: &str) -> Column {
    Column {
        name: name.into(),
        hive_type: t.into(),
    }
}

fn partition(date: &str, location: &str) -> PartitionInfo {
    PartitionInfo {
        values: vec![
            date[..4].into(),
            date[4..6].into(),
            date[6..].into(),
            date.into(),
        ],
        location: location.into(),
        parameters: BTreeMap::from([("rows".to_string(), "3".to_string())]),
    }
}

/// Checks `catalog` keeps the contract, in `database` (created if missing) with tables under
/// `s3://{bucket}/`. Panics on the first broken promise.
pub async fn check(catalog: &dyn Catalog, database: &str, bucket: &str) {
    let location = format!("s3://{bucket}/planning/tascomi/increment/appeals/");
    catalog.ensure_database(database).await.unwrap();
    catalog.ensure_database(database).await.unwrap();
    assert_eq!(
        catalog.table(database, "increment_appeals").await.unwrap(),
        None
    );
    assert!(
        catalog
            .list_partitions(database, "increment_appeals")
            .await
            .unwrap()
            .is_empty()
    );

    let mut def = TableDef {
        database: database.into(),
        name: "increment_appeals".into(),
        location: location.clone(),
        columns: vec![col("id", "int"), col("name", "string")],
        partition_keys: common::layout::IMPORT_PARTITION_KEYS
            .map(String::from)
            .to_vec(),
    };
    catalog.ensure_table(&def).await.unwrap();
    catalog.ensure_table(&def).await.unwrap();
    assert_eq!(
        catalog.table(database, "increment_appeals").await.unwrap(),
        Some(def.clone())
    );

    // A new column is added; a missing one is kept; a retyped one is refused.
    def.columns = vec![col("id", "int"), col("added", "timestamp")];
    catalog.ensure_table(&def).await.unwrap();
    let got = catalog
        .table(database, "increment_appeals")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<_> = got.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "added"]);
    def.columns = vec![col("id", "string")];
    match catalog.ensure_table(&def).await {
        Err(CatalogError::TypeConflict {
            column,
            existing,
            proposed,
            ..
        }) => {
            assert_eq!(
                (column.as_str(), existing.as_str(), proposed.as_str()),
                ("id", "int", "string")
            );
        }
        other => panic!("expected a type conflict, got {other:?}"),
    }

    let first = partition("20261121", &format!("{location}a/run-1/"));
    assert_eq!(
        catalog
            .publish_partition(database, "increment_appeals", &first)
            .await
            .unwrap(),
        None
    );
    let second = partition("20261120", &format!("{location}b/run-1/"));
    catalog
        .publish_partition(database, "increment_appeals", &second)
        .await
        .unwrap();
    let switched = partition("20261121", &format!("{location}a/run-2/"));
    assert_eq!(
        catalog
            .publish_partition(database, "increment_appeals", &switched)
            .await
            .unwrap(),
        Some(first.location.clone())
    );
    let listed = catalog
        .list_partitions(database, "increment_appeals")
        .await
        .unwrap();
    assert_eq!(listed, vec![second.clone(), switched.clone()]);

    catalog
        .drop_partition(database, "increment_appeals", &second.values)
        .await
        .unwrap();
    catalog
        .drop_partition(database, "increment_appeals", &second.values)
        .await
        .unwrap();
    let listed = catalog
        .list_partitions(database, "increment_appeals")
        .await
        .unwrap();
    assert_eq!(listed, vec![switched]);

    // `set_column_types` changes what `ensure_table` refuses, keeps the rest, twice alike; it
    // names a column or table that does not exist.
    for _ in 0..2 {
        catalog
            .set_column_types(database, "increment_appeals", &[col("name", "int")])
            .await
            .unwrap();
    }
    let got = catalog
        .table(database, "increment_appeals")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.columns,
        [
            col("id", "int"),
            col("name", "int"),
            col("added", "timestamp")
        ]
    );
    assert_eq!(
        (got.location.as_str(), got.partition_keys.len()),
        (location.as_str(), 4)
    );
    let err = catalog
        .set_column_types(database, "increment_appeals", &[col("nope", "int")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no column nope"), "{err}");
    match catalog
        .set_column_types(database, "increment_missing", &[col("id", "int")])
        .await
    {
        Err(CatalogError::TableNotFound { table, .. }) => assert_eq!(table, "increment_missing"),
        other => panic!("expected table not found, got {other:?}"),
    }
}
