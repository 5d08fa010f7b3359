use sandflow::task;

#[task(cache = true, cache_version = "1", cache_ignore = ["sed"])]
pub fn draw(n: i64, seed: i64) -> i64 {
    n + seed
}

#[task(cache_version = "1")]
pub fn plain(n: i64) -> i64 {
    n
}

fn main() {}
