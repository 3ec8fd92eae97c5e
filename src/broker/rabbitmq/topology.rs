//! The topology, described once ([`TopologySpec`]): both lanes' exchanges, work queues,
//! retry tiers and dead letters, and the replay log. [`declare_topology`] declares it,
//! idempotently, from every role; [`topology_definitions`] renders it as a RabbitMQ
//! definitions file; [`delete_topology`] removes it.

use std::time::Duration;

use lapin::{
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable, LongString},
    Channel, Connection, ConnectionProperties, ExchangeKind,
};

use crate::broker::{Lane, Topology};

/// Deliveries of one message after which RabbitMQ itself dead-letters it: only reached
/// when consumers crash mid-message, since handled failures count attempts themselves.
const QUORUM_DELIVERY_LIMIT: i64 = 20;
/// How long the replay log keeps notifications.
const LOG_MAX_AGE: &str = "7D";

pub(super) fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

/// Every exchange, queue and binding the code uses, described once: `declare_topology`
/// declares from this description and `topology_definitions` renders it as a RabbitMQ
/// definitions file, so `deploy/rabbitmq/definitions.json` and the code cannot drift.
#[derive(Debug, Clone)]
struct TopologySpec {
    exchanges: Vec<ExchangeSpec>,
    queues: Vec<QueueSpec>,
    bindings: Vec<BindingSpec>,
}

#[derive(Debug, Clone)]
struct ExchangeSpec {
    name: String,
    /// Dead-letter exchanges fan out; the lanes' own exchanges route by key.
    fanout: bool,
}

#[derive(Debug, Clone)]
struct QueueSpec {
    name: String,
    arguments: Vec<(&'static str, Argument)>,
}

#[derive(Debug, Clone)]
enum Argument {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone)]
struct BindingSpec {
    queue: String,
    exchange: String,
    routing_key: String,
}

impl Argument {
    fn text(s: &str) -> Self {
        Argument::Text(s.to_owned())
    }

    fn amqp(&self) -> AMQPValue {
        match self {
            Argument::Text(s) => text(s),
            Argument::Int(n) => AMQPValue::LongLongInt(*n),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Argument::Text(s) => serde_json::Value::from(s.as_str()),
            Argument::Int(n) => serde_json::Value::from(*n),
        }
    }
}

impl TopologySpec {
    fn new(topology: &Topology, retry_delays: &[Duration]) -> Self {
        let mut spec = TopologySpec {
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        };
        for lane in Lane::ALL {
            spec.add_lane(topology, lane, retry_delays);
        }
        // The replay log: fresh inbound messages only (re-fed ones are already in it).
        let log = topology.log_stream();
        spec.queues.push(QueueSpec {
            name: log.clone(),
            arguments: vec![
                ("x-queue-type", Argument::text("stream")),
                ("x-max-age", Argument::text(LOG_MAX_AGE)),
            ],
        });
        spec.bind(&log, &topology.exchange(Lane::Inbound), Topology::FRESH);
        spec
    }

    fn add_lane(&mut self, topology: &Topology, lane: Lane, retry_delays: &[Duration]) {
        let exchange = topology.exchange(lane);
        let dead = topology.dead_exchange(lane);
        self.exchanges.push(ExchangeSpec {
            name: exchange.clone(),
            fanout: false,
        });
        self.exchanges.push(ExchangeSpec {
            name: dead.clone(),
            fanout: true,
        });
        let dead_queue = topology.dead_queue(lane);
        self.queues.push(QueueSpec {
            name: dead_queue.clone(),
            arguments: vec![("x-queue-type", Argument::text("quorum"))],
        });
        self.bind(&dead_queue, &dead, "");
        let work = topology.work_queue(lane);
        self.queues.push(QueueSpec {
            name: work.clone(),
            arguments: vec![
                ("x-queue-type", Argument::text("quorum")),
                ("x-delivery-limit", Argument::Int(QUORUM_DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", Argument::text(&dead)),
                ("x-dead-letter-strategy", Argument::text("at-least-once")),
                ("x-overflow", Argument::text("reject-publish")),
            ],
        });
        for key in [Topology::FRESH, Topology::REFEED] {
            self.bind(&work, &exchange, key);
        }
        for delay in retry_delays {
            self.queues.push(QueueSpec {
                name: topology.retry_queue(lane, *delay),
                arguments: vec![
                    ("x-queue-type", Argument::text("classic")),
                    ("x-message-ttl", Argument::Int(delay.as_millis() as i64)),
                    ("x-dead-letter-exchange", Argument::text(&exchange)),
                    (
                        "x-dead-letter-routing-key",
                        Argument::text(Topology::REFEED),
                    ),
                ],
            });
        }
    }

    fn bind(&mut self, queue: &str, exchange: &str, routing_key: &str) {
        self.bindings.push(BindingSpec {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        });
    }
}

/// The topology as the `exchanges`, `queues` and `bindings` (and `vhosts`) sections of a
/// RabbitMQ definitions file for the vhost `/`: what `deploy/rabbitmq/definitions.json`
/// must hold, since RabbitMQ refuses a redeclaration whose arguments differ.
pub fn topology_definitions(topology: &Topology, retry_delays: &[Duration]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    const VHOST: &str = "/";
    let spec = TopologySpec::new(topology, retry_delays);
    let exchanges: Vec<Value> = spec
        .exchanges
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "vhost": VHOST,
                "type": if e.fanout { "fanout" } else { "direct" },
                "durable": true,
                "auto_delete": false,
                "internal": false,
                "arguments": {},
            })
        })
        .collect();
    let queues: Vec<Value> = spec
        .queues
        .iter()
        .map(|q| {
            let arguments: Map<String, Value> = q
                .arguments
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.json()))
                .collect();
            json!({
                "name": q.name,
                "vhost": VHOST,
                "durable": true,
                "auto_delete": false,
                "arguments": arguments,
            })
        })
        .collect();
    let bindings: Vec<Value> = spec
        .bindings
        .iter()
        .map(|b| {
            json!({
                "source": b.exchange,
                "vhost": VHOST,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": {},
            })
        })
        .collect();
    json!({
        "vhosts": [{"name": VHOST}],
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    })
}

/// Declares every exchange, queue and binding of both lanes (exchanges first, then
/// queues, then bindings); safe to repeat from every role (the arguments never change for
/// a given name).
pub async fn declare_topology(
    channel: &Channel,
    topology: &Topology,
    retry_delays: &[Duration],
) -> lapin::Result<()> {
    let spec = TopologySpec::new(topology, retry_delays);
    let exchange_options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in &spec.exchanges {
        let kind = if exchange.fanout {
            ExchangeKind::Fanout
        } else {
            ExchangeKind::Direct
        };
        channel
            .exchange_declare(
                exchange.name.as_str().into(),
                kind,
                exchange_options,
                FieldTable::default(),
            )
            .await?;
    }
    for queue in &spec.queues {
        let arguments: Vec<(&str, AMQPValue)> = queue
            .arguments
            .iter()
            .map(|(k, v)| (*k, v.amqp()))
            .collect();
        channel
            .queue_declare(queue.name.as_str().into(), DURABLE, table(&arguments))
            .await?;
    }
    for binding in &spec.bindings {
        channel
            .queue_bind(
                binding.queue.as_str().into(),
                binding.exchange.as_str().into(),
                binding.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Removes every queue and exchange of a namespace (tests and `deploy/` scripts clean up
/// after themselves with it).
pub async fn delete_topology(
    url: &str,
    topology: &Topology,
    retry_delays: &[Duration],
) -> lapin::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let spec = TopologySpec::new(topology, retry_delays);
    for queue in spec.queues {
        channel
            .queue_delete(queue.name.into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in spec.exchanges {
        channel
            .exchange_delete(exchange.name.into(), Default::default())
            .await?;
    }
    let _ = connection.close(200, "bye".into()).await;
    Ok(())
}
