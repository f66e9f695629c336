//! `GlueCatalog` against the moto server: the catalog contract, and tables Athena can read.

mod support;

use std::collections::BTreeMap;

use common::catalog::{Catalog, CatalogError, Column, GlueCatalog, PartitionInfo, TableDef};

fn appeals(database: &str, bucket: &str) -> TableDef {
    TableDef {
        database: database.into(),
        name: "appeals".into(),
        location: format!("s3://{bucket}/planning/tascomi/snapshot/appeals/"),
        columns: vec![
            Column {
                name: "id".into(),
                hive_type: "bigint".into(),
            },
            Column {
                name: "import_datetime".into(),
                hive_type: "timestamp".into(),
            },
        ],
        partition_keys: [
            "snapshot_year",
            "snapshot_month",
            "snapshot_day",
            "snapshot_date",
        ]
        .map(String::from)
        .to_vec(),
    }
}

#[tokio::test]
async fn glue_catalog_keeps_the_catalog_contract() {
    let Some(config) = support::moto().await else {
        return;
    };
    let catalog = GlueCatalog::new(&config);
    let database = support::unique("tascomi-test");
    tascomi_test_support::contract::catalog::check(&catalog, &database, "tascomi-refined-zone")
        .await;
}

#[tokio::test]
async fn tables_are_external_parquet_tables_athena_can_read() {
    let Some(config) = support::moto().await else {
        return;
    };
    let catalog = GlueCatalog::new(&config);
    let database = support::unique("tascomi-test");
    let def = appeals(&database, "tascomi-refined-zone");
    catalog.ensure_database(&database).await.unwrap();
    catalog.ensure_table(&def).await.unwrap();

    let raw = aws_sdk_glue::Client::new(&config)
        .get_table()
        .database_name(&database)
        .name("appeals")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(raw.table_type(), Some("EXTERNAL_TABLE"));
    assert_eq!(
        raw.parameters()
            .and_then(|p| p.get("classification"))
            .map(String::as_str),
        Some("parquet")
    );
    let sd = raw.storage_descriptor().unwrap();
    assert_eq!(sd.location(), Some(def.location.as_str()));
    assert_eq!(
        sd.input_format(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
    );
    assert_eq!(
        sd.output_format(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
    );
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    let columns: Vec<_> = sd
        .columns()
        .iter()
        .map(|c| (c.name(), c.r#type().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [("id", "bigint"), ("import_datetime", "timestamp")]
    );
    let keys: Vec<_> = raw
        .partition_keys()
        .iter()
        .map(|c| (c.name(), c.r#type().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("snapshot_year", "string"),
            ("snapshot_month", "string"),
            ("snapshot_day", "string"),
            ("snapshot_date", "string")
        ]
    );
}

#[tokio::test]
async fn a_partition_carries_the_table_formats_its_location_and_parameters() {
    let Some(config) = support::moto().await else {
        return;
    };
    let catalog = GlueCatalog::new(&config);
    let database = support::unique("tascomi-test");
    let def = appeals(&database, "tascomi-refined-zone");
    catalog.ensure_database(&database).await.unwrap();
    catalog.ensure_table(&def).await.unwrap();
    let values: Vec<String> = ["2026", "11", "21", "20261121"].map(String::from).to_vec();
    let location = format!(
        "{}snapshot_year=2026/snapshot_month=11/snapshot_day=21/snapshot_date=20261121/run-1/",
        def.location
    );
    let partition = PartitionInfo {
        values: values.clone(),
        location: location.clone(),
        parameters: BTreeMap::from([("run_id".to_string(), "run-1".to_string())]),
    };
    catalog
        .publish_partition(&database, "appeals", &partition)
        .await
        .unwrap();

    let raw = aws_sdk_glue::Client::new(&config)
        .get_partition()
        .database_name(&database)
        .table_name("appeals")
        .set_partition_values(Some(values))
        .send()
        .await
        .unwrap()
        .partition
        .unwrap();
    let sd = raw.storage_descriptor().unwrap();
    assert_eq!(sd.location(), Some(location.as_str()));
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    assert_eq!(sd.columns().len(), 2);
    assert_eq!(
        raw.parameters()
            .and_then(|p| p.get("run_id"))
            .map(String::as_str),
        Some("run-1")
    );
}

#[tokio::test]
async fn publishing_into_a_missing_table_names_the_table() {
    let Some(config) = support::moto().await else {
        return;
    };
    let catalog = GlueCatalog::new(&config);
    let database = support::unique("tascomi-test");
    catalog.ensure_database(&database).await.unwrap();
    let partition = PartitionInfo {
        values: vec!["2026".into()],
        location: "s3://b/p/".into(),
        parameters: BTreeMap::new(),
    };
    match catalog
        .publish_partition(&database, "nope", &partition)
        .await
    {
        Err(CatalogError::TableNotFound {
            database: db,
            table,
        }) => {
            assert_eq!((db.as_str(), table.as_str()), (database.as_str(), "nope"));
        }
        other => panic!("expected TableNotFound, got {other:?}"),
    }
    assert_eq!(
        catalog.table("no-such-database", "nope").await.unwrap(),
        None
    );
    assert!(
        catalog
            .list_partitions("no-such-database", "nope")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_catalog_whose_databases_terraform_manages_never_creates_one() {
    let Some(config) = support::moto().await else {
        return;
    };
    let managed = GlueCatalog::new(&config).with_managed_databases();
    let database = support::unique("tascomi-managed");
    let err = managed.ensure_database(&database).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&database), "{text}");
    assert!(text.contains("TASCOMI_MANAGE_DATABASES"), "{text}");
    let exists = aws_sdk_glue::Client::new(&config)
        .get_database()
        .name(&database)
        .send()
        .await;
    assert!(exists.is_err(), "the managed catalog created {database}");
    // Once Terraform has created it, publishing goes on as usual.
    GlueCatalog::new(&config)
        .ensure_database(&database)
        .await
        .unwrap();
    managed.ensure_database(&database).await.unwrap();
    managed
        .ensure_table(&appeals(&database, "tascomi-refined-zone"))
        .await
        .unwrap();
}
