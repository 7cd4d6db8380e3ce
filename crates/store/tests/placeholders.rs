//! The store writes each statement once, with PostgreSQL's `$n` placeholders (numbered in
//! order of first appearance): SQLite reads `$1` as a named parameter and numbers named
//! parameters by first appearance, so the same text binds the same way on both.

#[tokio::test]
async fn dollar_placeholders_bind_in_order_on_sqlite() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let (a, b, again): (String, i64, String) =
        sqlx::query_as("SELECT $1, $2, $1").bind("x").bind(7_i64).fetch_one(&pool).await.unwrap();
    assert_eq!((a.as_str(), b, again.as_str()), ("x", 7, "x"));
}
