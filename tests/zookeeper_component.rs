//! The ZooKeeper adapter against a real ZooKeeper server: the forged image in
//! Docker, through testcontainers. Runs under plain `cargo test`; builds the
//! image with the forge when it is missing.

use stateproof::process;
use stateproof::systems::reach::Reach;
use stateproof::systems::zookeeper::ZooKeeper;
use stateproof::systems::{KeyValue, Record, System};
use stateproof::wait::{self, Probe};
use std::net::SocketAddr;
use std::time::Duration;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const IMAGE: (&str, &str) = ("stateproof/zookeeper", "3.8");

async fn ensure_image() {
    let image = format!("{}:{}", IMAGE.0, IMAGE.1);
    if process::succeeds("docker", &["image", "inspect", &image]).await {
        return;
    }
    eprintln!("{image} is missing: building it with scripts/forge zookeeper");
    process::visible("scripts/forge", &["zookeeper"]).await.expect("the forge could not build the ZooKeeper image");
}

async fn standalone_server() -> (ContainerAsync<GenericImage>, SocketAddr) {
    ensure_image().await;
    let container = GenericImage::new(IMAGE.0, IMAGE.1)
        .with_exposed_port(2181.tcp())
        .with_wait_for(WaitFor::message_on_stdout("binding to port"))
        .with_hostname("zk-0")
        .with_env_var("ZK_REPLICAS", "1")
        .start()
        .await
        .expect("starting a ZooKeeper container (is Docker running? scripts/forge starts it)");
    let port = container.get_host_port_ipv4(2181).await.unwrap();
    (container, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test]
async fn write_then_read_returns_the_written_version() {
    let (_server, address) = standalone_server().await;
    let zk = ZooKeeper::new(Reach::Direct(vec![address]));
    let written = zk.write(0, "/stateproof/component/a", "alpha").await.unwrap();
    assert_eq!(written.value, "alpha");
    assert!(written.version > 0, "mzxid of a real write is positive: {written:?}");
    let read = zk.read(0, "/stateproof/component/a").await.unwrap();
    assert_eq!(read, Some(written.clone()));

    let rewritten = zk.write(0, "/stateproof/component/a", "beta").await.unwrap();
    assert!(rewritten.version > written.version, "a second write has a later version");
    assert_eq!(
        zk.read(0, "/stateproof/component/a").await.unwrap(),
        Some(Record { value: "beta".into(), ..rewritten })
    );
}

#[tokio::test]
async fn a_missing_key_reads_as_none() {
    let (_server, address) = standalone_server().await;
    let zk = ZooKeeper::new(Reach::Direct(vec![address]));
    assert_eq!(zk.read(0, "/stateproof/never-written").await.unwrap(), None);
}

#[tokio::test]
async fn health_follows_the_real_server_and_fails_when_it_is_frozen() {
    let (server, address) = standalone_server().await;
    let zk = ZooKeeper::new(Reach::Direct(vec![address]));
    // The server logs that it binds before it answers four-letter words.
    wait::until("a healthy standalone server", Duration::from_secs(30), || async {
        Ok(match zk.health(&[0]).await? {
            Ok(()) => Probe::Done(()),
            Err(why) => Probe::Pending(why),
        })
    })
    .await
    .unwrap();

    server.pause().await.unwrap();
    let frozen = zk.health(&[0]).await.unwrap();
    server.unpause().await.unwrap();
    let why = frozen.expect_err("a frozen server must not count as healthy");
    assert!(why.contains("did not answer"), "{why}");
}
