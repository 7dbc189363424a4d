use std::time::{Duration, Instant};
use surql::connection::{ConnectionConfig, connect, connect_read_only, run_query};
#[tokio::main]
async fn main() {
    let url = std::env::args().nth(1).unwrap();
    let c = ConnectionConfig::new(url.clone(), "probe", "main").with_credentials("root", "root");
    let t = Instant::now();
    for _ in 0..20 { let _ = connect(&c, Duration::from_secs(10)).await.unwrap(); }
    println!("connect+signin+use: {:?}/each", t.elapsed() / 20);
    let db = connect(&c, Duration::from_secs(10)).await.unwrap();
    let t = Instant::now();
    for _ in 0..20 { run_query(&db, "INFO FOR DB;", serde_json::json!({})).await.unwrap(); }
    println!("INFO FOR DB: {:?}/each", t.elapsed() / 20);
    let t = Instant::now();
    for _ in 0..20 { let _ = connect_read_only(&c, Duration::from_secs(10)).await.unwrap(); }
    println!("connect_read_only: {:?}/each", t.elapsed() / 20);
    let t = Instant::now();
    for _ in 0..20 { let d = db.clone(); d.use_ns("probe").use_db("main").await.unwrap(); }
    println!("clone+use: {:?}/each", t.elapsed() / 20);
    let t = Instant::now();
    for _ in 0..20 { run_query(&db, "DEFINE TABLE IF NOT EXISTS x; ", serde_json::json!({})).await.unwrap(); }
    println!("define: {:?}/each", t.elapsed() / 20);
}
