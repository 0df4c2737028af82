//! Reading length-prefixed frames off a connection: the 4-byte big-endian size is checked
//! against a maximum before anything is allocated, and the buffer grows only as bytes actually
//! arrive.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {got} of {want} frame bytes")]
    Truncated {
        got: usize,
        want: usize,
        /// The bytes that did arrive, size prefix included.
        partial: Vec<u8>,
    },
}

/// Reads one frame, size prefix included. `Ok(None)` on a clean close between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    read_frame_with_room(r, max, |_| 0).await
}

/// [`read_frame`] into a buffer with room for `room(total)` more bytes after the frame of
/// `total` bytes (up to 64 KiB of the frame, for one that large; see
/// [`chronik_capture::response_room`]): the broker's request buffer, which its exchange keeps with
/// the response after it, so that a small response joins it without a new allocation.
pub async fn read_frame_with_room<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    room: fn(usize) -> usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                got,
                want: 4,
                partial: prefix[..got].to_vec(),
            });
        }
        got += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let total = 4 + size;
    let mut frame = Vec::with_capacity(total.min(64 * 1024) + room(total));
    frame.extend_from_slice(&prefix);
    while frame.len() < total {
        let want = (total - frame.len()).min(64 * 1024);
        frame.reserve(want);
        let n = (&mut *r).take(want as u64).read_buf(&mut frame).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: frame.len(),
                want: total,
                partial: frame,
            });
        }
    }
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_rejects_bad_sizes() {
        let mut data: &[u8] = &[0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 7];
        assert_eq!(
            read_frame(&mut data, 10).await.unwrap(),
            Some(vec![0, 0, 0, 2, 9, 9])
        );
        assert_eq!(
            read_frame(&mut data, 10).await.unwrap(),
            Some(vec![0, 0, 0, 1, 7])
        );
        assert_eq!(read_frame(&mut data, 10).await.unwrap(), None);

        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
        assert!(matches!(
            read_frame(&mut neg, 10).await,
            Err(FrameError::Negative(-2))
        ));
        let mut big: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut big, 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        match read_frame(&mut short, 100).await {
            Err(FrameError::Truncated { got, want, partial }) => {
                assert_eq!((got, want), (6, 9));
                assert_eq!(partial, vec![0, 0, 0, 5, 1, 2]);
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    /// A frame read with room has it after the frame, and reads the same; the next frame
    /// starts where it did.
    #[tokio::test]
    async fn a_frame_read_with_room_has_it_spare() {
        let mut data: &[u8] = &[0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 7];
        let f = read_frame_with_room(&mut data, 10, |_| 100).await.unwrap();
        let f = f.expect("a frame");
        assert_eq!(f, [0, 0, 0, 2, 9, 9]);
        assert!(f.capacity() >= f.len() + 100, "capacity {}", f.capacity());
        assert_eq!(
            read_frame_with_room(&mut data, 10, |_| 100).await.unwrap(),
            Some(vec![0, 0, 0, 1, 7])
        );
    }
}
