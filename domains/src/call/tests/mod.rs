mod harness;
mod originated;
mod scenarios;
mod twiml;
