//! Text analysis shared by indexing, querying and highlighting, so all three always agree.
//!
//! Latin-script (and any space-separated) text becomes lowercased, accent-folded words. Chinese,
//! Japanese and Korean have no spaces between words, and a dictionary segmenter would bloat every
//! function that loads it, so CJK runs become overlapping character bigrams (the approach Lucene's
//! CJKAnalyzer takes): "你好世界" → 你好 · 好世 · 世界, each at its own position, so a query of two or
//! more characters is a phrase of bigrams. A run of one character stays a unigram.

use tantivy::tokenizer::{AsciiFoldingFilter, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer};

/// The name the message text field's analyzer is registered under in the index.
pub const ANALYZER: &str = "caas_chat";

/// Longer tokens (pasted hashes, base64) are dropped: nobody searches for them and they bloat the index.
const MAX_TOKEN_BYTES: usize = 64;

/// The analyzer of the message text field ([`ANALYZER`]): chat tokens with over-long ones dropped and accents
/// folded to ASCII.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(ChatTokenizer)
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(AsciiFoldingFilter)
        .build()
}

/// The analyzed tokens of `text`, in order, with byte offsets into `text`.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while let Some(token) = stream.next() {
        tokens.push(token.clone());
    }
    tokens
}

/// Han ideographs, kana and Hangul: the scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x11FF       // Hangul Jamo
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0x20000..=0x2FA1F   // CJK extensions B–F, compatibility supplement
    )
}

/// Splits text into lowercased words of letters and digits, and CJK runs into overlapping character bigrams (a
/// lone CJK character stays a unigram).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChatTokenizer;

/// The tokens [`ChatTokenizer`] made of one text, handed out in order.
pub struct ChatTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for ChatTokenizer {
    type TokenStream<'a> = ChatTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ChatTokenStream {
        ChatTokenStream {
            tokens: split(text),
            next: 0,
        }
    }
}

impl TokenStream for ChatTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn split(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i + 1).map_or(text.len(), |(offset, _)| *offset);
    let mut tokens = Vec::new();
    let mut push = |from: usize, to: usize, text: String| {
        tokens.push(Token {
            offset_from: from,
            offset_to: to,
            position: tokens.len(),
            text,
            position_length: 1,
        })
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let run_end =
            |belongs: &dyn Fn(char) -> bool| (i..chars.len()).find(|&j| !belongs(chars[j].1)).unwrap_or(chars.len());
        if is_cjk(c) {
            let end = run_end(&is_cjk);
            if end - i == 1 {
                push(chars[i].0, end_of(i), c.to_string());
            }
            for k in i..end.saturating_sub(1) {
                push(chars[k].0, end_of(k + 1), [chars[k].1, chars[k + 1].1].iter().collect());
            }
            i = end;
        } else if c.is_alphanumeric() {
            let end = run_end(&|c: char| c.is_alphanumeric() && !is_cjk(c));
            push(
                chars[i].0,
                end_of(end - 1),
                text[chars[i].0..end_of(end - 1)].to_lowercase(),
            );
            i = end;
        } else {
            i += 1;
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_are_lowercased_and_accent_folded() {
        assert_eq!(
            texts("Hello, Café-au-lait! 42x"),
            ["hello", "cafe", "au", "lait", "42x"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_and_lone_characters_unigrams() {
        assert_eq!(texts("你好世界"), ["你好", "好世", "世界"]);
        assert_eq!(texts("去 東京タワー"), ["去", "東京", "京タ", "タワ", "ワー"]);
        assert_eq!(texts("안녕하세요 friends"), ["안녕", "녕하", "하세", "세요", "friends"]);
        assert_eq!(texts("meet at 北京station"), ["meet", "at", "北京", "station"]);
    }

    #[test]
    fn offsets_point_at_the_original_text_and_positions_count_tokens() {
        let text = "Hi 你好吗";
        let tokens = tokens(text);
        let spans: Vec<(&str, usize)> = tokens
            .iter()
            .map(|t| (&text[t.offset_from..t.offset_to], t.position))
            .collect();
        assert_eq!(spans, [("Hi", 0), ("你好", 1), ("好吗", 2)]);
    }
}
