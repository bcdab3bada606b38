mod harness;
mod originated;
mod scenarios;
