//! A music library, as the seed's last paragraph suggests: the first level goes through the
//! albums (one launch plan execution each), the second through each album's songs (a map),
//! and the results come back as typed records and word-count maps.
use sandflow::{dynamic, launch_plan, map, task, workflow, SfType};
use std::collections::BTreeMap;

#[derive(SfType, Clone, Debug, PartialEq)]
pub struct Song {
    pub title: String,
    pub lyrics: String,
}

#[derive(SfType, Clone, Debug, PartialEq)]
pub struct Album {
    pub name: String,
    pub songs: Vec<Song>,
}

#[derive(SfType, Clone, Debug, PartialEq)]
pub struct SongStats {
    pub title: String,
    pub words: i64,
    pub counts: BTreeMap<String, i64>,
}

#[derive(SfType, Clone, Debug, PartialEq)]
pub struct AlbumSummary {
    pub album: String,
    pub words: i64,
    pub songs: Vec<SongStats>,
    /// The album's most used word, if it has any word at least `min_len` long.
    pub top_word: Option<String>,
}

#[derive(SfType, Clone, Debug, PartialEq)]
pub struct LibraryReport {
    pub albums: Vec<AlbumSummary>,
    pub vocabulary: BTreeMap<String, i64>,
}

#[task]
pub fn songs(album: Album) -> Vec<Song> {
    album.songs
}

/// Counts the words of at least `min_len` letters; `lowercase` folds case first.
#[task(retries = 1)]
pub fn count_words(song: Song, min_len: i64, lowercase: bool) -> SongStats {
    let mut counts = BTreeMap::new();
    let mut words = 0;
    for w in song.lyrics.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let w = if lowercase { w.to_lowercase() } else { w.to_string() };
        if w.chars().count() as i64 >= min_len.max(1) {
            words += 1;
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    SongStats { title: song.title, words, counts }
}

#[task]
pub fn summarize(album: Album, songs: Vec<SongStats>) -> AlbumSummary {
    let mut all: BTreeMap<&str, i64> = BTreeMap::new();
    for s in &songs {
        for (w, n) in &s.counts {
            *all.entry(w).or_insert(0) += n;
        }
    }
    // Most used; ties go to the alphabetically first word, so the result is deterministic.
    let top_word = all.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(w, _)| w.to_string());
    let words = songs.iter().map(|s| s.words).sum();
    AlbumSummary { album: album.name, words, songs, top_word }
}

#[workflow]
pub fn album_wf(album: Album, min_len: i64, lowercase: bool) -> AlbumSummary {
    let stats = map(count_words::entity())
        .fixed("min_len", min_len)
        .fixed("lowercase", lowercase)
        .over(songs::call(album));
    summarize::call(album, stats)
}

/// One child execution per album: words of 3+ letters by default, always case-folded.
#[launch_plan(album_wf, defaults(min_len = 3), fixed(lowercase = true), max_parallelism = 8)]
pub fn album_lp(album: Album) -> AlbumSummary;

#[dynamic]
pub fn per_album(albums: Vec<Album>) -> Vec<AlbumSummary> {
    albums.into_iter().map(album_lp::call).collect::<Vec<_>>()
}

#[task]
pub fn vocabulary(albums: Vec<AlbumSummary>) -> LibraryReport {
    let mut vocabulary = BTreeMap::new();
    for a in &albums {
        for s in &a.songs {
            for (w, n) in &s.counts {
                *vocabulary.entry(w.clone()).or_insert(0) += n;
            }
        }
    }
    LibraryReport { albums, vocabulary }
}

#[workflow]
pub fn library(albums: Vec<Album>) -> LibraryReport {
    vocabulary::call(per_album::call(albums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_plain_functions() {
        let s = count_words(Song { title: "t".into(), lyrics: "La la LA, land!".into() }, 2, true);
        assert_eq!(s.words, 4);
        assert_eq!(s.counts["la"], 3);
    }
}
