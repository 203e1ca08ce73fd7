// The page both the native baseline and the Flagon guest render: the same template, the same
// data, the same auto-escaping. Included with `include!` by both.

#[derive(serde::Serialize)]
pub struct User {
    pub name: &'static str,
    pub email: &'static str,
}

#[derive(serde::Serialize)]
pub struct Item {
    pub id: u32,
    pub name: String,
    pub price: String,
    pub tags: Vec<&'static str>,
}

#[derive(serde::Serialize)]
pub struct Page {
    pub title: &'static str,
    pub user: User,
    pub items: Vec<Item>,
    pub note: &'static str,
}

pub const TEMPLATE: &str = include_str!("page.html");

pub fn page() -> Page {
    Page {
        title: "Inventory <report>",
        user: User {
            name: "Ada & Grace",
            email: "ops@example.com",
        },
        items: (1..=20)
            .map(|i| Item {
                id: i,
                name: format!("Widget \"{i}\" <b>"),
                price: format!("{}.{:02}", i * 3, i * 7 % 100),
                tags: vec!["new", "<script>", "sale"],
            })
            .collect(),
        note: "escaping 'quotes' & <tags> is on",
    }
}

pub fn render(env: &minijinja::Environment<'_>) -> String {
    env.get_template("page.html")
        .and_then(|t| t.render(minijinja::value::Serde(page())))
        .unwrap_or_else(|e| format!("render error: {e}"))
}

pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", TEMPLATE).expect("page template parses");
    env
}
