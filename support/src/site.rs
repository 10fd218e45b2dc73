//! The generated web site the crawler example crawls.

/// Page `i` of a generated site of `pages` pages: it links to its children `2i+1` and `2i+2` (so
/// every page is reachable from page 0), to two pseudo-random pages, and back home.
pub fn site_page(i: usize, pages: usize) -> String {
    let links = [
        2 * i + 1,
        2 * i + 2,
        (i * 7 + 3) % pages,
        (i * 31 + 11) % pages,
        0,
    ];
    let mut html = format!("<html><body><h1>Page {i}</h1>\n");
    for l in links.into_iter().filter(|&l| l < pages) {
        html += &format!("<a href=\"/page/{l}\">page {l}</a>\n");
    }
    html + "</body></html>\n"
}
