// The database page both the native baseline (axum + rusqlite) and the Flagon guest (SQLite
// adapter + host templates) serve: the benchmark page's template, its 20 items read from
// SQLite on every request. Included with `include!` by both.

/// The schema and rows; Flagon applies it as a migration, the native server at start.
pub fn seed_sql() -> String {
    let mut sql = String::from(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL, tags TEXT NOT NULL);\n",
    );
    for i in 1..=20u32 {
        sql.push_str(&format!(
            "INSERT INTO items VALUES ({i}, 'Widget \"{i}\" <b>', '{}.{:02}', 'new,<script>,sale');\n",
            i * 3,
            i * 7 % 100
        ));
    }
    sql
}

pub const DB_QUERY: &str = "SELECT id, name, price, tags FROM items ORDER BY id LIMIT 20";

#[derive(serde::Serialize, serde::Deserialize)]
pub struct DbItem {
    pub id: u32,
    pub name: String,
    pub price: String,
    pub tags: String,
}

#[derive(serde::Serialize)]
pub struct DbPageItem<'a> {
    pub id: u32,
    pub name: &'a str,
    pub price: &'a str,
    pub tags: Vec<&'a str>,
}

#[derive(serde::Serialize)]
pub struct DbPageUser {
    pub name: &'static str,
    pub email: &'static str,
}

#[derive(serde::Serialize)]
pub struct DbPage<'a> {
    pub title: &'static str,
    pub user: DbPageUser,
    pub items: Vec<DbPageItem<'a>>,
    pub note: &'static str,
}

pub fn db_page(rows: &[DbItem]) -> DbPage<'_> {
    DbPage {
        title: "Inventory <report>",
        user: DbPageUser {
            name: "Ada & Grace",
            email: "ops@example.com",
        },
        items: rows
            .iter()
            .map(|r| DbPageItem {
                id: r.id,
                name: &r.name,
                price: &r.price,
                tags: r.tags.split(',').collect(),
            })
            .collect(),
        note: "escaping 'quotes' & <tags> is on",
    }
}
