//! Reading attempt logs, which can be huge (an agent may print gigabytes).

use std::path::Path;

/// The last `cap` bytes of a file, without reading the rest: memory stays
/// bounded whatever the agent printed. A file that cannot be read: empty.
pub async fn read_tail(path: &Path, cap: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut body = Vec::new();
    if let Ok(mut f) = tokio::fs::File::open(path).await {
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        if len > cap {
            let _ = f.seek(std::io::SeekFrom::Start(len - cap)).await;
        }
        let _ = f.take(cap).read_to_end(&mut body).await;
    }
    body
}
