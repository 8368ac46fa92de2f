//! Frames of the request-response protocol: one message per stream, read to its end and
//! refused past its size limit. The node's own requests and their answers go through it (and
//! tools that speak the protocol use it); peers' requests to the node are read by
//! `super::inbound`, which admits them first. What the bytes mean is the business of whoever
//! answers them (`crate::sync`).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

/// Length-limited frames of raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct RequestCodec {
    max_request: usize,
    max_response: usize,
}

impl RequestCodec {
    /// Frames of at most `max_request` bytes one way and `max_response` the other.
    pub fn new(max_request: usize, max_response: usize) -> Self {
        RequestCodec {
            max_request,
            max_response,
        }
    }
}

async fn read_limited<T>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message over its size limit",
        ));
    }
    Ok(buf)
}

async fn write_all<T>(io: &mut T, bytes: Vec<u8>) -> std::io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    io.write_all(&bytes).await?;
    io.close().await
}

impl request_response::Codec for RequestCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_limited(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_limited(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all(io, res).await
    }
}
